"""A root program for `rlm run --root-code samples/anchorages.py`: code picks the log entries that
record an anchorage, one sub-call per group reads them, and FINAL joins the answers. It sees the
REPL API a root model's code gets: `context`, `QUESTION`, `DEFAULT_CHUNK_SIZE`,
`llm_query_batched`, `FINAL`.
"""
# ruff: noqa: F821 -- context, QUESTION, llm_query_batched and FINAL are REPL names

entries = [entry for entry in context.split("\n\n") if "anchor" in entry.lower()]
groups = ["\n\n".join(entries[i : i + 20]) for i in range(0, len(entries), 20)]
print(f"{len(entries)} entries mention an anchorage; asking {len(groups)} groups")
replies = llm_query_batched([f"{QUESTION}\nReply one per line, or NONE.\n\n{group}" for group in groups])
found = [line for reply in replies for line in reply.splitlines() if line.strip() and line.strip() != "NONE"]
FINAL("\n".join(found) if found else "NONE")
