"""find: ask every chunk of every document, keep every answer the chunk's own text backs.

De-duplicated; each answer names its document when the context holds several. A failed sub-call
fails the execution. A REPL program (sent as source text after common.py); no root model writes it.
"""
# ruff: noqa: F821 -- context, QUESTION, DEFAULT_CHUNK_SIZE, llm_query_batched and FINAL are REPL names

chunks, names = document_chunks(context, DEFAULT_CHUNK_SIZE)
several = len(set(names)) > 1
print(f"find: no root model; asking all {len(chunks)} chunks of about {DEFAULT_CHUNK_SIZE} characters")
replies = check_replies(llm_query_batched([EXTRACT_PROMPT.format(question=QUESTION, text=c) for c in chunks]))
found = []
for chunk, name, reply in zip(chunks, names, replies, strict=True):
    checked = supported(reply, chunk, QUESTION)
    if checked:
        found.append((checked, name))
found = unique(with_sources(found, several))
unbacked = sum(1 for r in replies if not is_none(r)) - len(found)
print(
    f"find: {len(found)} answers backed by their chunk; {unbacked} replies not backed by the text were dropped"
)
FINAL("\n".join(found) if found else "NONE")
