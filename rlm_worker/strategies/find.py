"""find: ask every chunk, keep every answer the chunk's own text backs, de-duplicated.

A REPL program (sent as source text after common.py); no root model writes it.
"""
# ruff: noqa: F821 -- context, QUESTION, DEFAULT_CHUNK_SIZE, llm_query_batched and FINAL are REPL names

chunks = split_chunks(as_text(context), DEFAULT_CHUNK_SIZE)
print(f"find: no root model; asking all {len(chunks)} chunks of about {DEFAULT_CHUNK_SIZE} characters")
replies = llm_query_batched([EXTRACT_PROMPT.format(question=QUESTION, text=c) for c in chunks])
found = []
for chunk, reply in zip(chunks, replies, strict=True):
    checked = supported(reply, chunk, QUESTION)
    if checked:
        found.append(checked)
found = unique(found)
unbacked = sum(1 for r in replies if not is_none(r)) - len(found)
print(
    f"find: {len(found)} answers backed by their chunk; {unbacked} replies not backed by the text were dropped"
)
FINAL("\n".join(found) if found else "NONE")
