"""Helpers every built-in strategy program starts with: documents and chunking, the question's
terms, the chunk prompts for small models, failed sub-calls, and the check of an extractive answer
against its chunk.

This file is sent to the sandbox as source text ahead of each strategy, so it uses only what the
REPL allows (`re`, `json`, `math`; no names starting with an underscore). It is also an ordinary
module, so the tests import it directly.
"""

import bisect
import collections
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
#: `find`'s prompt: "copy the answer" (not "that sentence"), so a 135M model replies with the
#: answer's words or a short NONE instead of copying the chunk's first sentence until its answer
#: limit; the check against the chunk then keeps only what the text says (BENCHMARKS.md, issue 15).
FIND_PROMPT = (
    "Question: {question}\n"
    "If the text below answers the question, copy the answer from it. "
    "If it does not, reply exactly NONE.\n\n"
    'Text:\n"""\n{text}\n"""'
)
MAP_PROMPT = (
    "Question: {question}\n"
    "Answer from the text below only, in one or two sentences. "
    "If the text does not answer it, reply exactly NONE.\n\n"
    'Text:\n"""\n{text}\n"""'
)
EXPAND_PROMPT = (
    "Question: {question}\n"
    "Write ten single words, other than the question's own, that a text answering this question "
    "would use (synonyms and related words), separated by commas."
)
COMBINE_PROMPT = (
    "Question: {question}\n"
    "Notes taken from parts of a document:\n{notes}\n\n"
    "Answer the question from these notes only. If they do not answer it, reply exactly NONE."
)

#: Words that frame a question rather than point at its answer ("How does Bierce define X?",
#: "On what date ..."), and light verbs whose irregular forms no stemmer joins ("come" / "came",
#: "take" / "took", "see" / "saw"): left out of the terms an answer sentence must cover.
FRAMING = set(
    """define defined defines definition meaning mean means according call calls called word words
    date dates year years time times come comes coming go goes going get gets getting take takes
    taken taking make makes making happen happens happened see sees seen seeing saw""".split()
)
#: A question asking for a date, and one asking for a quantity: the answer sentence must hold one.
ASKS_DATE = re.compile(r"\b(when|what date|which date|what year|which year|what day)\b", re.IGNORECASE)
DATE_WORD = re.compile(
    r"\b(1[0-9]{3}|20[0-9]{2}|January|February|March|April|May|June|July|August|September|October|"
    r"November|December)\b"
)
ASKS_NUMBER = re.compile(r"\bhow (many|much|long|far|old)\b", re.IGNORECASE)
#: A sentence ends at . ! or ? before a capital, a quote or a bracket, but not after an initial ("J. Treloar").
SENTENCE_END = re.compile(r"(?<![\s.][A-Z]\.)(?<=[.!?])\s+(?=[A-Z\"'(_])")
#: The share of the question's term weight an answer sentence must cover (see `coverage`).
MIN_COVERAGE = 0.4

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


def documents(value):
    """The context as (name, text) pairs: a list of `{"name", "text"}` documents keeps its names;
    anything else is one unnamed document."""
    if isinstance(value, list) and value and all(isinstance(d, dict) and "text" in d for d in value):
        return [
            (str(d.get("name") or "document " + str(i + 1)), as_text(d["text"])) for i, d in enumerate(value)
        ]
    return [(None, as_text(value))]


def paragraph_passages(text, size):
    """Passages that follow the text's paragraphs: one entry of a log or a dictionary each (short
    neighbours merged up to half of `size`), long paragraphs cut into chunks of about `size`."""
    passages = []
    for paragraph in re.split(r"\n\s*\n", text):
        if not paragraph.strip():
            continue
        if len(paragraph) > size:
            passages.extend(split_chunks(paragraph, size))
        elif passages and len(passages[-1]) + len(paragraph) + 2 <= size // 2:
            passages[-1] = passages[-1] + "\n\n" + paragraph
        else:
            passages.append(paragraph)
    return passages


def document_chunks(value, size, by_paragraph=False, with_pages=False):
    """(chunks, names): every document cut into chunks of about `size` characters (or into
    `paragraph_passages`), and the name of the document each comes from (None when unnamed).
    `with_pages`: (chunks, names, pages), each chunk's page (slide, sheet) where it starts."""
    chunks = []
    names = []
    pages = []
    for name, text in documents(value):
        cursor = 0
        for piece in paragraph_passages(text, size) if by_paragraph else split_chunks(text, size):
            at = text.find(piece, cursor)
            cursor = at if at >= 0 else cursor
            chunks.append(piece)
            names.append(name)
            pages.append(page_at(text, cursor))
    return (chunks, names, pages) if with_pages else (chunks, names)


#: A converted document's page, slide or sheet marker, on a line of its own: `[page 3]`.
PAGE_MARK = re.compile(r"^\[(page|slide|sheet) ([^\]\n]+)\]$", re.M)


def page_at(text, position):
    """The page (slide, sheet) in effect at `position` of a converted document, or None."""
    last = None
    for mark in PAGE_MARK.finditer(text, 0, position + 1):
        last = mark
    return last.group(1) + " " + last.group(2) if last else None


def page_of(answer, chunk, start_page):
    """The page of the passage `answer` quotes from `chunk` (whose start is on `start_page`): the
    last marker before the quote inside the chunk, else the chunk's own page, wherever the
    marker falls relative to the quoted sentence."""
    words = answer.strip()[:60]
    at = chunk.find(words) if words else -1
    inside = page_at(chunk, at) if at >= 0 else None
    return inside or start_page


def with_sources(found, several):
    """Answers from (answer, document name[, page]) tuples; each names its document when the
    context holds several, and its page (slide, sheet) when the document has page markers, so a
    reader can check it."""
    out = []
    for item in found:
        answer, name = item[0], item[1]
        page = item[2] if len(item) > 2 else None
        where = [part for part in (name if several else None, page) if part]
        out.append(answer + " [source: " + ", ".join(where) + "]" if where else answer)
    return out


def check_replies(replies):
    """Stop the program when a sub-call failed (unknown model, missing key, provider error): the
    execution then fails with that reason instead of reading the error as "not in the text"."""
    for reply in replies:
        if reply.startswith("Error:"):
            raise RuntimeError("a sub-call failed: " + reply[len("Error:") :].strip())
    return replies


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


def normalised_words(text):
    """The words of a text as grounding compares them: lowercase, no punctuation (so quotes,
    dashes, apostrophes and spacing do not count), `2,316` and `2316` the same number."""
    return re.findall(r"[^\W_]+", re.sub(r"(?<=\d),(?=\d{3})", "", text.lower()))


def key_words(text):
    """The words of an answer that must be exact: numbers and names (capitalised words)."""
    found = set(w for w in normalised_words(text) if any(c.isdigit() for c in w))
    for name in re.findall(r"\b[A-Z][\w'-]*", text):
        found.update(w for w in normalised_words(name) if w not in STOPWORDS)
    return found


def copied_from(answer, passage):
    """Whether `answer` is a copy of a stretch of `passage`, compared as normalised words: at most
    one word in ten may differ (a dropped article, a changed ending), numbers and names never."""
    words = normalised_words(answer)
    text = normalised_words(passage)
    if not words or any(w not in set(text) for w in key_words(answer)):
        return False
    allowed = len(words) // 10
    width = len(words) + max(1, allowed)
    wanted = collections.Counter(words)
    for start in range(0, max(1, len(text) - len(words) + 1)):
        window = collections.Counter(text[start : start + width])
        if sum(min(n, window[w]) for w, n in wanted.items()) >= len(words) - allowed:
            return True
    return False


def unit_holding(answer, passage):
    """The paragraph (or line) of `passage` the answer was copied from, else the whole passage."""
    for unit in re.split(r"\n\s*\n", passage):
        if copied_from(answer, unit):
            return unit
    return passage


def located(sentence, unit):
    """The copied sentence, led by its paragraph's first sentence when that is a short heading
    (a date, a headword) the sentence needs to be understood."""
    first = re.split(r"(?<=[.!?])\s+", unit.strip(), maxsplit=1)[0].strip()
    if len(first) > 60 or not normalised_words(first):
        return sentence
    if copied_from(first, sentence) or copied_from(sentence, first):
        return sentence
    return first.rstrip(".:") + ": " + sentence


def mentions(text, terms):
    """Whether `text` holds one of `terms` (as a word start, so `bury` also finds `buried`)."""
    return any(term_pattern(t).search(text) for t in terms)


def grounded(answer, chunk, question, terms=None):
    """The answer as the chunk states it, if the chunk backs it, else None.

    A copy (normalised words, see `copied_from`) of the chunk is kept when it adds something to
    the question and its paragraph carries one of `terms` (default: the question's terms). A reply
    in the model's own words is kept only when its numbers and names appear in one sentence of the
    chunk with a question term and most of its other words appear in the chunk. Small models
    invent fluent answers and copy unrelated sentences; this keeps only what the text says.
    """
    if is_none(answer):
        return None
    terms = question_terms(question) if terms is None else terms
    line = LEAD_INS.sub("", answer.strip().split("\n")[0].strip(), count=1).strip().strip("\"'").strip()
    asked = set(normalised_words(question)) | set(STOPWORDS)
    for candidate in (line, clean_answer(answer)):
        if not candidate or not adds_to(candidate, asked):
            continue
        if copied_from(candidate, chunk):
            unit = unit_holding(candidate, chunk)
            if mentions(unit, terms):
                return located(candidate, unit)
            return None
    return paraphrase_supported(answer, chunk, question)


def adds_to(answer, asked):
    """Whether the answer says more than the question: a word (not a lone letter) it does not hold."""
    return any(w not in asked and (len(w) > 1 or w.isdigit()) for w in normalised_words(answer))


def supported(answer, chunk, question):
    """`grounded` with the question's own terms."""
    return grounded(answer, chunk, question)


def paraphrase_supported(answer, chunk, question):
    """A reply in the model's own words, checked word by word against the chunk (see `grounded`)."""
    text = clean_answer(answer)
    asked = set(tokens(question)) | set(question_terms(question))
    new = [t for t in tokens(text) if t not in asked and t not in STOPWORDS and (len(t) > 1 or t.isdigit())]
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


def named_terms(question):
    """The names a question asks about: its capitalised words past the first, minus stopwords."""
    words = re.findall(r"(?<=\s)[A-Z][A-Za-z]+", question.strip())
    return [w.lower() for w in words if w.lower() not in STOPWORDS]


def suggested_terms(reply, terms, limit=12):
    """The words a sub-model suggested for a question, without the question's own and stopwords."""
    found = []
    for word in re.findall(r"[a-z]+", reply.lower()):
        if len(word) > 2 and word not in STOPWORDS and word not in terms and word not in found:
            found.append(word)
    return found[:limit]


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


def sentences(paragraph):
    """The sentences of a paragraph, its line breaks folded into spaces."""
    return [s.strip() for s in SENTENCE_END.split(" ".join(paragraph.split())) if s.strip()]


def answer_units(chunks):
    """Every sentence of every chunk as a candidate answer: (chunk index, heading, sentence).

    A paragraph's heading is its first sentence when that is short and more follow (a log
    entry's date, a dictionary's headword): it belongs to every other sentence of the paragraph,
    so "when" finds its date and "define X" its headword ("ADAGE, n: Boned wisdom for weak teeth.").
    """
    units = []
    for index, chunk in enumerate(chunks):
        for paragraph in re.split(r"\n\s*\n", chunk):
            parts = sentences(paragraph)
            heading = parts[0] if len(parts) > 1 and len(parts[0]) <= 60 else None
            for sentence in parts[1:] if heading else parts:
                units.append((index, heading, sentence))
    return units


def answer_terms(question):
    """The question's terms an answer must cover: `question_terms` without framing words."""
    return [t for t in question_terms(question) if t not in FRAMING]


def as_written(term, question):
    """The pattern a term is matched with: a word the question writes in capitals (ZEAL) must be
    in capitals in the text too (a dictionary's headword), else any case and ending."""
    upper = term.upper()
    if len(term) > 2 and re.search(r"\b" + re.escape(upper) + r"\b", question):
        return re.compile(r"\b" + re.escape(upper) + r"\b")
    return term_pattern(term)


def term_weights(terms, units, question, title=""):
    """Each term's weight: the log of how rare it is among the units (a term the text never
    uses weighs most, so a question about something absent cannot be covered); a word of the
    document's title (its first lines) weighs a third: naming the document locates nothing."""
    weights = {}
    for term in terms:
        pattern = as_written(term, question)
        found = sum(1 for _, heading, sentence in units if pattern.search(sentence + " " + (heading or "")))
        weight = math.log(1.0 + len(units) / (found + 0.5))
        weights[term] = weight / 3 if term_pattern(term).search(title) else weight
    return weights


def coverage(unit, weights, question):
    """The share of the question's term weight that a unit (its sentence and heading) holds."""
    total = sum(weights.values())
    if not total:
        return 0.0
    text = unit[2] + " " + (unit[1] or "")
    return sum(w for term, w in weights.items() if as_written(term, question).search(text)) / total


def fits_question(unit, question):
    """A "when" question needs a date in the sentence or its heading; a "how many" a number."""
    if ASKS_DATE.search(question) and not DATE_WORD.search(unit[2] + " " + (unit[1] or "")):
        return False
    return not (ASKS_NUMBER.search(question) and not re.search(r"\d", unit[2]))


def reply_agreement(reply, unit, question):
    """The share of a sub-call's words (beyond the question's) that a unit holds: how strongly
    the reader's reply points at this sentence. 0 for a reply saying the text does not answer."""
    if is_none(reply):
        return 0.0
    asked = set(normalised_words(question)) | STOPWORDS | {"answer"}
    words = set(w for w in normalised_words(reply) if w not in asked)
    if not words:
        return 0.0
    held = set(normalised_words(unit[2] + " " + (unit[1] or "")))
    return sum(1 for w in words if w in held) / len(words)


def unit_answer(unit):
    """A unit as an answer: the sentence led by its heading ("Sunday 3 April 1887: ...")."""
    _, heading, sentence = unit
    return heading.rstrip(".:") + ": " + sentence if heading else sentence


def text_vocabulary(chunks, terms, limit=5000):
    """The text's own content words (no stopwords, framing words or question terms), most frequent
    first and at most `limit`: the words a stand-in for a question word the text never uses is
    chosen from."""
    counts = collections.Counter(
        w
        for chunk in chunks
        for w in re.findall(r"[a-z]+", chunk.lower())
        if len(w) > 2 and w not in STOPWORDS and w not in FRAMING
    )
    asked = set(stem(t) for t in terms)
    words = [w for w, _ in counts.most_common() if stem(w) not in asked]
    return words[:limit]


def stand_in_credit(unit, stand_ins, weights):
    """The weight a unit earns through a stand-in: a question word the text never uses, weighed
    by the similarity of its stand-in that the unit holds (`stand_ins`: term -> [(word,
    similarity)]). One stand-in per unit at most: a sentence that stands in for two missing
    words ("registered tonnage" as "account ... tons") answers another question."""
    text = unit[2] + " " + (unit[1] or "")
    best = 0.0
    for term, options in stand_ins.items():
        for word, similarity in options:
            if term_pattern(word).search(text):
                best = max(best, weights.get(term, 0.0) * similarity)
    return best
