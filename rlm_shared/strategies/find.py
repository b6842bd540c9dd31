"""find: ask every passage of every document, keep every answer the passage's own text backs.

Passages follow the text's paragraphs (one entry of a log, one headword of a dictionary; long
paragraphs cut into chunks of about DEFAULT_CHUNK_SIZE): a small model asked about three log
entries at once copies the first one, asked about one entry it answers (BENCHMARKS.md, issue 15).
Every passage is read; more, shorter prompts cost no more prompt tokens, because the shared
question prefix is computed once per server slot (llama.cpp's prompt cache).
De-duplicated; each answer names its document when the context holds several. A failed sub-call
fails the execution. A REPL program (sent as source text after common.py); no root model writes it.
"""
# ruff: noqa: F821 -- context, QUESTION, DEFAULT_CHUNK_SIZE, llm_query_batched and FINAL are REPL names

#: The question's own words, framing words ("time", "date", "define") left out: a passage whose
#: answer is kept holds at least half of them. A small model asked about a one-paragraph passage
#: sometimes copies the paragraph's first line whatever the question; the copy is in the text,
#: but a dictionary entry that only shares the word "time" with "At what time does the ferry
#: leave?" does not answer it.
terms = answer_terms(QUESTION) or question_terms(QUESTION)


def on_topic(passage):
    return sum(1 for term in terms if mentions(passage, [term])) * 2 >= len(terms)


chunks, names, pages = document_chunks(context, DEFAULT_CHUNK_SIZE, by_paragraph=True, with_pages=True)
several = len(set(names)) > 1
print(
    f"find: no root model; asking all {len(chunks)} passages (paragraphs, at most about {DEFAULT_CHUNK_SIZE} characters)"
)
replies = check_replies(llm_query_batched([FIND_PROMPT.format(question=QUESTION, text=c) for c in chunks]))
found = []
for chunk, name, page, reply in zip(chunks, names, pages, replies, strict=True):
    checked = supported(reply, chunk, QUESTION)
    if checked and on_topic(chunk):
        found.append((checked, name, page_of(checked, chunk, page)))
found = unique(with_sources(found, several))
unbacked = sum(1 for r in replies if not is_none(r)) - len(found)
print(
    f"find: {len(found)} answers backed by their passage; {unbacked} replies not backed by the text were dropped"
)
FINAL("\n".join(found) if found else "NONE")
