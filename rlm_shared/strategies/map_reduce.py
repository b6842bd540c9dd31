"""map_reduce: ask every chunk the question, then combine the answers in one more call per batch.

Suits questions whose answer is spread over the text (summaries, lists). With several documents
each note carries `[source: name]` for the combining call to cite. Answers are not checked
against the text, so a small model's inventions survive; prefer `find` or `search` for facts.
A REPL program sent after common.py; no root model writes it.
"""
# ruff: noqa: F821 -- context, QUESTION, DEFAULT_CHUNK_SIZE, llm_query_batched and FINAL are REPL names

chunks, names = document_chunks(context, DEFAULT_CHUNK_SIZE)
several = len(set(names)) > 1
print(f"map_reduce: no root model; asking all {len(chunks)} chunks of about {DEFAULT_CHUNK_SIZE} characters")
replies = check_replies(llm_query_batched([MAP_PROMPT.format(question=QUESTION, text=c) for c in chunks]))
# Each note keeps its document's name, so the combined answer can cite its sources.
notes = unique(
    with_sources(
        [(clean_answer(r), n) for r, n in zip(replies, names, strict=True) if not is_none(r)], several
    )
)
print(f"map_reduce: {len(notes)} chunks answered; combining")
while len(notes) > 1:
    batches = [[]]
    for note in notes:
        if batches[-1] and sum(len(n) for n in batches[-1]) + len(note) > DEFAULT_CHUNK_SIZE:
            batches.append([])
        batches[-1].append(note)
    listed = ["\n".join(f"{i + 1}. {n}" for i, n in enumerate(batch)) for batch in batches]
    combined = check_replies(
        llm_query_batched([COMBINE_PROMPT.format(question=QUESTION, notes=n) for n in listed])
    )
    merged = unique([clean_answer(c) for c in combined if not is_none(c)])
    if len(batches) == 1 or len(merged) >= len(notes):
        notes = merged[:1] if len(batches) == 1 else merged
        break
    notes = merged
FINAL(notes[0] if notes else "NONE")
