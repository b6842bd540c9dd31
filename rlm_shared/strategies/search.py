"""search: find the sentences that cover the question's words, let the local model pick among them.

1. Cut every document into sentences; each keeps its paragraph's heading (a log entry's date, a
   dictionary's headword), so "when" finds a date and "define X" a headword.
2. Weigh the question's words by how rare they are in the text (a word the text never uses
   weighs most) and score each sentence by the share of that weight it holds. A sentence must
   hold `MIN_COVERAGE` of it, and a date for "when", a number for "how many": what the text
   does not say cannot be covered, so absent facts come out as NONE rather than as a guess; so
   does a question with two words the text never uses.
3. When a word of the question is missing from the text, ask the sub-model for words a text
   answering it would use (query expansion); a suggested word found in a sentence stands in for
   a missing word at half its weight.
4. Ask the sub-model to read the paragraphs holding the best sentences (`rank_passages` orders
   ties) and let each reply vote for the sentence it repeats; the best-scored sentences answer.
The answer names its document when the context holds several. "NONE" when no sentence holds
enough. A REPL program sent after common.py; no root model writes it.
"""
# ruff: noqa: F821 -- context, QUESTION, llm_query, llm_query_batched, rank_passages and FINAL
# are REPL names

USE_EXPANSION = True
USE_VOTES = True
READ_PASSAGES = 3
CANDIDATES = 6

chunks, names = document_chunks(context, 500, by_paragraph=True)
several = len(set(names)) > 1
title = " ".join(text[:300] + " " + (name or "") for name, text in documents(context))
units = answer_units(chunks)
terms = answer_terms(QUESTION)
print(f"search: no root model; {len(units)} sentences in {len(chunks)} paragraphs; terms {terms}")
# A name the question asks about (Sydney, BRIDE) that the text never mentions: nothing to read.
missing_names = [n for n in named_terms(QUESTION) if not any(term_pattern(n).search(c) for c in chunks)]
if missing_names:
    print(f"search: the text never mentions {missing_names}; no sentence can answer")
    FINAL("NONE")
weights = term_weights(terms, units, QUESTION, title)
absent = [t for t in terms if not any(as_written(t, QUESTION).search(c) for c in chunks)]
stand_ins = []
if USE_EXPANSION and absent:
    suggested = check_replies([llm_query(EXPAND_PROMPT.format(question=QUESTION))])[0]
    stand_ins = [
        w for w in suggested_terms(suggested, terms) if any(term_pattern(w).search(c) for c in chunks)
    ]
    print(f"search: the text never uses {absent}; words suggested for them that it uses: {stand_ins}")
# Two words of the question the text never uses (and no suggested word in their place): whatever
# sentence holds the rest answers another question ("How many passengers did the ship carry?").
if len(absent) - (1 if stand_ins else 0) > 1:
    print(f"search: the text never uses {absent}; no sentence can answer")
    FINAL("NONE")
total = sum(weights.values()) or 1.0
stand_in_weight = sum(weights[t] for t in absent) / 2


def score(unit):
    text = unit[2] + " " + (unit[1] or "")
    extra = stand_in_weight / total if any(term_pattern(w).search(text) for w in stand_ins) else 0.0
    return min(1.0, coverage(unit, weights, QUESTION) + extra)


scored = sorted(
    [(score(u), i) for i, u in enumerate(units) if fits_question(u, QUESTION)], key=lambda p: (-p[0], p[1])
)
candidates = [(s, i) for s, i in scored[:CANDIDATES] if s >= MIN_COVERAGE]
if not candidates:
    best = scored[0][0] if scored else 0.0
    print(
        f"search: no sentence holds enough of the question's words (best {best:.0%}); the text does not say"
    )
    FINAL("NONE")
# Paragraph order among equal sentences: BM25 over the question and its suggested words.
order = {
    index: rank for rank, (index, _) in enumerate(rank_passages(chunks, " ".join([QUESTION] + stand_ins), 50))
}
candidates.sort(key=lambda p: (-p[0], order.get(units[p[1]][0], len(order)), p[1]))
agreement = {}
if USE_VOTES:
    passages = list(dict.fromkeys(units[i][0] for _, i in candidates))[:READ_PASSAGES]
    print(
        f"search: {len(candidates)} sentences hold the question's words; asking the model to read {len(passages)} paragraphs"
    )
    replies = check_replies(
        llm_query_batched([EXTRACT_PROMPT.format(question=QUESTION, text=chunks[p]) for p in passages])
    )
    for passage, reply in zip(passages, replies, strict=True):
        for _, i in candidates:
            if units[i][0] == passage:
                agreement[i] = reply_agreement(reply, units[i], QUESTION)
final = sorted(
    [(s + 0.3 * agreement.get(i, 0.0), i) for s, i in candidates],
    key=lambda p: (-p[0], order.get(units[p[1]][0], len(order)), p[1]),
)
top = final[0][0]
kept = [(unit_answer(units[i]), names[units[i][0]]) for s, i in final if s >= top - 0.02][:3]
found = unique(with_sources(kept, several))
print(f"search: {len(found)} answers from the best-scored sentences ({top:.0%} of the question's weight)")
FINAL("\n".join(found))
