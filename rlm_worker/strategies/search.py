"""search: rank the passages for the question in code, ask the best few, widen when nothing holds.

1. Chunk every document into short passages (a small model reads short text best).
2. Ask the sub-model once for words a text answering the question would use (query expansion):
   the log says "was killed", never "died".
3. Rank the passages with `rank_passages` (BM25 over stemmed words, on the worker) for the
   question's words plus those, and ask the best few to copy the sentence that answers.
4. Keep only answers the passage backs (`grounded`); when none is, read the next passages in
   rounds, printing progress, until one is backed, the round limit or half the time limit.
The answer names its document when the context holds several. "NONE" when nothing is backed.
A REPL program sent after common.py; no root model writes it.
"""
# ruff: noqa: F821 -- context, QUESTION, DEFAULT_CHUNK_SIZE, TIMEOUT_SECONDS, llm_query,
# llm_query_batched, rank_passages and FINAL are REPL names

import datetime

USE_EXPANSION = True
USE_WIDENING = True
FIRST_ROUND = 4
WIDEN_ROUND = 4
WIDEN_ROUNDS = 3

started = datetime.datetime.now()
# A small model picks the right sentence from one paragraph, not from a page: passages that follow
# the paragraphs (one log entry, one or two dictionary entries) also make the ranking point at it.
window = 500 if DEFAULT_CHUNK_SIZE <= 2000 else min(DEFAULT_CHUNK_SIZE, 8000)
chunks, names = document_chunks(context, window, by_paragraph=True)
several = len(set(names)) > 1
terms = question_terms(QUESTION)
extra = []
if USE_EXPANSION:
    suggested = check_replies([llm_query(EXPAND_PROMPT.format(question=QUESTION))])[0]
    extra = suggested_terms(suggested, terms)
relevant = informative_terms(terms, chunks) + informative_terms(extra, chunks) or terms + extra
query = " ".join([QUESTION] + terms + extra)
ranked = rank_passages(chunks, query, len(chunks))
order = [index for index, _ in ranked]
score = dict(ranked)
print(
    f"search: no root model; {len(chunks)} passages of about {window} characters; terms {terms}; suggested {extra}"
)
# A name the question asks about (Sydney, BRIDE) that the text never mentions: nothing to read.
missing = [n for n in named_terms(QUESTION) if not any(term_pattern(n).search(c) for c in chunks)]
if missing:
    print(f"search: the text never mentions {missing}; no passage can answer")
    FINAL("NONE")
# First the best-ranked passages; then (widening) the next ranked ones, then those sharing no word.
rounds_queue = [order[:FIRST_ROUND]]
if USE_WIDENING:
    rest = order[FIRST_ROUND:] + [i for i in range(len(chunks)) if i not in score]
    rounds_queue += [rest[i : i + WIDEN_ROUND] for i in range(0, len(rest), WIDEN_ROUND)][:WIDEN_ROUNDS]
backed = []
asked = 0
rounds = 0
for batch in rounds_queue:
    if backed:
        break
    if not batch:
        continue
    if asked:
        print(f"search: nothing backed in the {asked} passages read; reading {len(batch)} more")
    elif order:
        print(f"search: asking the {len(batch)} best-ranked passages")
    else:
        print(f"search: no passage shares a word with the question; reading {len(batch)} in order")
    replies = check_replies(
        llm_query_batched([EXTRACT_PROMPT.format(question=QUESTION, text=chunks[i]) for i in batch])
    )
    for index, reply in zip(batch, replies, strict=True):
        checked = grounded(reply, chunks[index], QUESTION, relevant)
        if checked:
            backed.append((score.get(index, 0.0), checked, names[index]))
    asked += len(batch)
    rounds += 1
    if (datetime.datetime.now() - started).total_seconds() > TIMEOUT_SECONDS / 2:
        break
# A backed answer from a passage much weaker for the question answers another question.
best = max([s for s, _, _ in backed], default=0.0)
kept = [(answer, name) for s, answer, name in backed if s >= best * 2 / 3]
found = unique(with_sources(kept, several))
print(f"search: {len(found)} answers backed by their passage after reading {asked} of {len(chunks)} passages")
FINAL("\n".join(found) if found else "NONE")
