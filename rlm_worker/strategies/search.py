"""search: find the passages that carry the question's terms in code, ask only those.

Windows around the question's rarest terms are scored in code (as an RLM's own code would), the
best few are asked, and each answer is checked against its window; answers from windows scoring
under two thirds of the best backed window are dropped. When none is backed, the best two
half-width windows are asked again (small models read short text best). When no term occurs
anywhere, it widens to asking every chunk. A REPL program sent after common.py; no root model writes it.
"""
# ruff: noqa: F821 -- context, QUESTION, DEFAULT_CHUNK_SIZE, llm_query_batched and FINAL are REPL names

SEARCH_WINDOWS = 6
window = 800 if DEFAULT_CHUNK_SIZE <= 2000 else min(DEFAULT_CHUNK_SIZE, 8000)
text = as_text(context)
terms = question_terms(QUESTION)
scored = score_windows(text, terms, window, SEARCH_WINDOWS)
windows = [w for _, w in scored]
scores = [score for score, _ in scored]
if windows:
    print(f"search: no root model; terms {terms}; asking the {len(windows)} best {window}-character windows")
else:
    windows = split_chunks(text, DEFAULT_CHUNK_SIZE)
    scores = [1.0] * len(windows)
    print(f"search: no root model; no term of {terms} occurs, so asking all {len(windows)} chunks")
replies = llm_query_batched([EXTRACT_PROMPT.format(question=QUESTION, text=w) for w in windows])
backed = []
for passage, reply, score in zip(windows, replies, scores, strict=True):
    checked = supported(reply, passage, QUESTION)
    if checked:
        backed.append((score, checked))
if scored and not backed:
    # Nothing backed: small models read short text best, so look again at half the width.
    narrow = score_windows(text, terms, window // 2, 2)
    print(f"search: nothing backed; asking the {len(narrow)} best {window // 2}-character windows")
    again = llm_query_batched([EXTRACT_PROMPT.format(question=QUESTION, text=w) for _, w in narrow])
    for (score, passage), reply in zip(narrow, again, strict=True):
        checked = supported(reply, passage, QUESTION)
        if checked:
            backed.append((score, checked))
    replies = replies + again
# A backed answer from a passage much weaker in the question's terms answers another question.
best = max([score for score, _ in backed], default=0.0)
found = unique([answer for score, answer in backed if score >= best * 2 / 3])
unbacked = sum(1 for r in replies if not is_none(r)) - len(backed)
print(
    f"search: {len(found)} answers backed by their passage; {unbacked} replies not backed by the text were dropped"
)
FINAL("\n".join(found) if found else "NONE")
