"""Helpers every built-in strategy program starts with: chunking, the question's terms, the chunk
prompts for small models, and the check of an extractive answer against its chunk.

This file is sent to the sandbox as source text ahead of each strategy, so it uses only what the
REPL allows (`re`, `json`, `math`; no names starting with an underscore). It is also an ordinary
module, so the tests import it directly.
"""

import bisect
import json
import math
import re

# Short and direct, question first: small models follow these; "copy that sentence" makes the
# answer checkable against the text, and "NONE" gives them a way out other than inventing.
EXTRACT_PROMPT = (
    "Question: {question}\n"
    "If the text below states the answer, copy that sentence exactly. "
    "If it does not, reply exactly NONE.\n\n"
    'Text:\n"""\n{text}\n"""'
)
MAP_PROMPT = (
    "Question: {question}\n"
    "Answer from the text below only, in one or two sentences. "
    "If the text does not answer it, reply exactly NONE.\n\n"
    'Text:\n"""\n{text}\n"""'
)
COMBINE_PROMPT = (
    "Question: {question}\n"
    "Notes taken from parts of a document:\n{notes}\n\n"
    "Answer the question from these notes only. If they do not answer it, reply exactly NONE."
)

STOPWORDS = set(
    """a an the is are was were be been being of to in on at by for from with as and or but not no
    it its this that these those there their they them he she his her him we our you your i me my
    what which who whom whose when where why how do does did done has have had can could would should
    will shall may might must any some all each every than then so such into onto about over under
    text question answer reply state states stated say says said tell tells mention mentions
    document context please give find list name named many much""".split()
)
NONE_PHRASES = (
    "does not state",
    "does not say",
    "does not mention",
    "does not contain",
    "does not provide",
    "doesn't",
    "not stated",
    "not mentioned",
    "no information",
    "cannot be determined",
    "not specified",
    "there is no",
)
LEAD_INS = re.compile(
    r"^\s*(?:the\s+)?(?:answer|response)(?:\s+to\s+the\s+question(?:\s+\"[^\"]*\")?)?\s*(?:is)?\s*[:\-]?\s*",
    re.IGNORECASE,
)
TOKEN = re.compile(r"[a-z0-9]+(?:[-:,.'][a-z0-9]+)*")


def as_text(value):
    """The context as one string: a list's items become paragraphs, a dict's keys lines."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(str(k) + ": " + as_text(v) for k, v in value.items())
    if isinstance(value, list):
        return "\n\n".join(as_text(v) for v in value)
    return json.dumps(value, default=str)


def split_chunks(text, size):
    """Chunks of about `size` characters, cut at a paragraph, line or sentence end when one is near."""
    chunks = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            floor = start + (size * 2) // 3
            for mark in ("\n\n", "\n", ". ", " "):
                cut = text.rfind(mark, floor, end)
                if cut > 0:
                    end = cut + len(mark)
                    break
        piece = text[start:end]
        if piece.strip():
            chunks.append(piece)
        start = end
    return chunks


def tokens(text):
    """Lowercase words and numbers; `2,316` and `2316` are the same number."""
    return TOKEN.findall(re.sub(r"(?<=\d),(?=\d{3})", "", text.lower()))


def question_terms(question):
    """The question's salient terms, in order: its words minus stopwords and question words."""
    seen = []
    for token in tokens(question):
        token = token.strip(".,:'")
        if token.endswith("'s"):
            token = token[:-2]
        if len(token) > 1 and token not in STOPWORDS and token not in seen:
            seen.append(token)
    return seen


def stem(term):
    """A crude stem so `inspected` also finds `inspection`; numbers stay whole."""
    if term.isdigit() or len(term) <= 4:
        return term
    for suffix in ("ing", "ed", "es", "s"):
        if term.endswith(suffix) and len(term) - len(suffix) >= 4:
            return term[: -len(suffix)]
    return term


def term_pattern(term):
    return re.compile(r"\b" + re.escape(stem(term)), re.IGNORECASE)


def is_none(answer):
    """A model's way of saying the text does not answer (or a failed sub-call)."""
    if not answer or answer.startswith("Error:"):
        return True
    head = answer.strip()[:80]
    if "NONE" in head.upper().split() or head.upper().startswith("NONE"):
        return True
    lowered = head.lower()
    return any(phrase in lowered for phrase in NONE_PHRASES)


def clean_answer(answer):
    """The first line and first sentence of a reply, without lead-ins like "The answer is:"."""
    text = answer.strip().split("\n")[0].strip()
    text = LEAD_INS.sub("", text, count=1).strip()
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])", text, maxsplit=1)
    return parts[0].strip().strip("\"'").strip()


def text_units(text):
    """Sentences and paragraphs of a chunk: an answer must sit in one unit with a question term."""
    return [u for u in re.split(r"(?<=[.!?])\s+|\n\s*\n", text) if u.strip()]


def supported(answer, chunk, question):
    """The checked answer if the chunk backs it, else None.

    Backed means: the answer adds something to the question; its numbers and names all appear in
    the chunk, in one sentence that also carries a term of the question; at least half of its
    other new words appear in the chunk; and the chunk holds at least two of the question's terms
    (or its only one). Small models invent fluent answers; this keeps only what the text says.
    """
    if is_none(answer):
        return None
    text = clean_answer(answer)
    asked = set(tokens(question)) | set(question_terms(question))
    new = [t for t in tokens(text) if t not in asked and t not in STOPWORDS]
    if not new:
        return None
    capitalized = set(w.lower() for w in re.findall(r"\b[A-Z][A-Za-z'-]+", text)[1:])
    capitalized |= set(w.lower() for w in re.findall(r"\b[A-Z]{2,}\b", text))
    key = [t for t in new if any(c.isdigit() for c in t) or t in capitalized]
    others = [t for t in new if t not in key]
    chunk_tokens = set(tokens(chunk))
    if any(t not in chunk_tokens for t in key):
        return None
    if others and sum(1 for t in others if t in chunk_tokens) * 2 < len(others):
        return None
    terms = question_terms(question)
    patterns = [term_pattern(t) for t in terms]
    if sum(1 for p in patterns if p.search(chunk)) < min(2, len(patterns)):
        return None
    anchors = key or [t for t in others if t in chunk_tokens]
    for unit in text_units(chunk):
        unit_tokens = set(tokens(unit))
        if all(t in unit_tokens for t in anchors) and any(p.search(unit) for p in patterns):
            return text
    return None


def unique(answers):
    """Answers without repeats (compared without case, spacing and end punctuation), in order."""
    seen = set()
    kept = []
    for answer in answers:
        norm = " ".join(answer.lower().split()).rstrip(".")
        if norm not in seen:
            seen.add(norm)
            kept.append(answer)
    return kept


def score_windows(text, terms, width, limit):
    """Where the question's terms cluster: up to `limit` non-overlapping windows of `width`
        characters, best first. A term weighs the log of how rare it is (inverse document frequency
    over window-sized spans), so the question's rare words lead."""
    hits = {}
    for term in terms:
        found = [m.start() for m in term_pattern(term).finditer(text)]
        if found:
            hits[term] = found[:2000]
    if not hits:
        return []
    spans = max(1.0, len(text) / width)
    weight = {t: math.log(1.0 + spans / len(found)) for t, found in hits.items()}
    scored = []
    for term, found in hits.items():
        for pos in found[:500]:
            start = max(0, min(pos - width // 2, len(text) - width))
            end = start + width
            score = sum(weight[t] for t, f in hits.items() if occurs_between(f, start, end))
            scored.append((score, weight[term], start))
    # On a tie, the window centred on the rarer term wins: the answer sits near it.
    scored.sort(key=lambda entry: (-entry[0], -entry[1], entry[2]))
    chosen = []
    for score, _, start in scored:
        if all(abs(start - other) >= width for _, other in chosen):
            chosen.append((score, start))
        if len(chosen) >= limit:
            break
    return [(score, snap_window(text, start, width)) for score, start in chosen]


def occurs_between(positions, start, end):
    """Whether a sorted list of positions has one in [start, end)."""
    index = bisect.bisect_left(positions, start)
    return index < len(positions) and positions[index] < end


def snap_window(text, start, width):
    """The window widened to whole words at both ends."""
    begin = text.rfind(" ", max(0, start - 40), start) + 1 if start > 0 else 0
    end = text.find(" ", start + width, start + width + 40)
    return text[begin : end if end > 0 else start + width]
