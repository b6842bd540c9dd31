"""The prompts. They are part of the product: they teach the model the strategy that works."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

SYSTEM_PROMPT = """\
You are the root agent of a Recursive Language Model. You answer a question about a context that is \
too large to read directly. The context is NOT in this prompt: it is stored in the variable `context` \
inside a Python REPL, and you work on it by writing code.

Write code in fenced blocks marked ```repl (```python also works). Every block you write is run, in \
order, and you see its printed output (long output is truncated, so print summaries, not data). \
Variables persist between blocks and between turns.

The REPL gives you:
- `context`: the input ({context_type}).
- `llm_query(prompt, model=None) -> str`: ask a sub-model one question. It sees only the prompt you \
give it, so put the text it must read into the prompt (up to ~{chunk_size} characters per call works well).
- `llm_query_batched(prompts, model=None) -> list[str]`: many independent questions at once, run in \
parallel; answers come back in the same order. Prefer this to a loop of `llm_query`.
- `rlm_query(prompt, model=None, *, context=None, inherit_memory=False) -> str`: a child agent like \
you, with its own REPL whose `context` is the one you pass by keyword (else the prompt). Use it for \
sub-problems that themselves need code. `rlm_query_batched(prompts, model=None, contexts=None)` runs \
several at once.
- `rank_passages(passages, query, k=10) -> list of (index, score)`: the `k` strings of `passages` \
that best match `query` (BM25 over stemmed words, so `killed` finds `kill`), best first; passages \
sharing no word with the query are left out. Put other words the answer may use into the query.
- `rank_by_meaning(passages, query, k=10) -> list of (index, similarity)`: the `k` strings of \
`passages` nearest in meaning to `query` (sentence embeddings, cosine), best first: `died` finds \
`was killed`, `storm` finds `gale`, with no word in common. Slower than `rank_passages` on many passages.
- `memory`: your memory blocks. `memory["learnings"]` reads, `memory.append("learnings", text)` adds, \
`memory.replace(label, old, new)` edits. Record what you learn that later steps or later runs need.
- `context_0 … context_<n>` and `history`: in a session, every input so far (`context_0` the first \
run's, the last one this run's, the same as `context`) and a list of the earlier runs, each a dict \
{{"question", "answer", "status", "messages"}}. Your first message says how many there are.
- `SHOW_VARS()`: the variables you have defined.
- These names are the REPL's own: a cell that rebinds one (`context = ...`, `llm_query = ...`) has \
it put back afterwards, so keep your values under other names.
- `FINAL(answer)`: give the final answer and stop. `FINAL_VAR("name")` gives the value of a variable. \
A FINAL written outside a code block is read as text, never run: `FINAL("text")` is that text, and \
`FINAL(name)` the value of your variable `name` (or the word itself if there is no such variable).
{tools}- Modules you may import: re, json, math, collections, itertools, functools, statistics, string, \
textwrap, datetime, random, heapq, bisect. There is no file system, network or `os`.

A failed sub-call returns a string starting with "Error:" instead of raising; check for it, and \
`raise RuntimeError(reply)` when the execution cannot go on without it (it then fails with that reason).

The strategy that works:
1. Probe first: print `len(context)`, a short slice, and how the text is structured (headings, \
separators, records) before deciding how to split it.
2. Chunk by structure (sections, paragraphs, records), about {chunk_size} characters per chunk \
(`DEFAULT_CHUNK_SIZE`), never by reading it all yourself.
3. Search in code when you can: `re` and string methods find keywords, numbers and names for free; \
send the model only the chunks that matter.
4. Batch independent sub-calls with `llm_query_batched`. Write short, direct prompts with the \
question first and the text after; ask for "NONE" when the text does not say.
5. Aggregate the answers in code (count, deduplicate, sort) rather than asking a model to.
6. Verify before you answer: check extracted facts against the chunk text in code; if answers \
conflict, look again.
7. Call `FINAL(...)` only with the complete answer to the question. When the context does not \
answer it, call `FINAL("NONE")`: the execution then records that no answer was found.
"""

MEMORY_HEADER = "Your memory blocks (edit them through `memory`):"

FORCE_FINAL_PROMPT = (
    "You have used every iteration you were allowed. From what you know now, give your best final "
    "answer to the question. Reply with FINAL(your answer) on one line and nothing else."
)

NO_CODE_NUDGE = (
    "Your reply had no ```repl code block and no FINAL(...). Write code to examine `context`, "
    "or give the answer with FINAL(...)."
)


def describe_context(context: Any, preview_chars: int = 300) -> str:
    """Metadata the root sees instead of the context: type, sizes, a short preview."""
    if isinstance(context, str):
        return (
            f"`context` is a str of {len(context):,} characters.\n"
            f"Preview of the first {min(preview_chars, len(context))} characters:\n"
            f"{context[:preview_chars]!r}"
        )
    if is_document_list(context):
        return describe_documents(context)
    if isinstance(context, list):
        sizes = [len(_as_text(item)) for item in context]
        shown = sizes[:20]
        more = f" ... and {len(sizes) - 20} more" if len(sizes) > 20 else ""
        preview = _as_text(context[0])[:preview_chars] if context else ""
        return (
            f"`context` is a list of {len(context):,} items, {sum(sizes):,} characters in total.\n"
            f"Item lengths: {shown}{more}\n"
            f"Preview of item 0: {preview!r}"
        )
    if isinstance(context, dict):
        keys = list(context)[:30]
        total = sum(len(_as_text(v)) for v in context.values())
        return (
            f"`context` is a dict of {len(context):,} keys, {total:,} characters in its values.\n"
            f"Keys: {keys}{' ...' if len(context) > 30 else ''}\n"
            f"Preview: {_as_text(context)[:preview_chars]!r}"
        )
    return f"`context` is a {type(context).__name__}: {_as_text(context)[:preview_chars]!r}"


DOCUMENT_KEYS = {"name", "format", "text"}
DOCUMENTS_LISTED = 60
PAGE_MARKER = re.compile(r"^\[(page|slide|sheet) [^\]\n]+\]$", re.M)


def is_document_list(context: Any) -> bool:
    """A folder, an archive or several files, as the input reader makes them: a non-empty list of
    `{"name", "format", "text"}` dicts."""
    return (
        isinstance(context, list)
        and bool(context)
        and all(isinstance(item, dict) and DOCUMENT_KEYS <= item.keys() for item in context)
    )


def describe_documents(documents: list[dict[str, Any]]) -> str:
    """Which documents there are, by index, name, format and size (never their text), so the root
    can pick the ones to read and cite them by name (and page)."""
    total = sum(len(str(doc["text"])) for doc in documents)
    lines = [
        f"`context` is a list of {len(documents):,} documents, {total:,} characters in total. Each is a "
        'dict {"name", "format", "text"}: `context[i]["text"]` is document i. Cite documents by name '
        "(and page, where the text has `[page N]` markers) in your answer.",
        "Documents (index: name, format, size):",
    ]
    for index, doc in enumerate(documents[:DOCUMENTS_LISTED]):
        text = str(doc["text"])
        pages = Counter(PAGE_MARKER.findall(text))
        counts = ", ".join(f"{n:,} {kind}s" for kind, n in sorted(pages.items()))
        lines.append(
            f"{index}: {doc['name']} ({doc['format']}, {len(text):,} chars{', ' + counts if counts else ''})"
        )
    if len(documents) > DOCUMENTS_LISTED:
        lines.append(
            f"... and {len(documents) - DOCUMENTS_LISTED:,} more: print([d['name'] for d in context]) "
            "to see them all."
        )
    return "\n".join(lines)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def context_type_name(context: Any) -> str:
    if is_document_list(context):
        return 'list of documents, each a dict {"name", "format", "text"}'
    return {str: "str", list: "list", dict: "dict"}.get(type(context), type(context).__name__)


def build_system_prompt(context: Any, chunk_size: int, tools: str = "") -> str:
    """`tools`: the lines on the server's custom tools (`ToolBox.prompt_section`), if it has any."""
    return SYSTEM_PROMPT.format(context_type=context_type_name(context), chunk_size=chunk_size, tools=tools)


def build_first_user_message(
    user_query: str,
    context: Any,
    memory: dict[str, str],
    depth: int,
    max_depth: int,
    session_note: str = "",
) -> str:
    blocks = "\n".join(f"<{label}>\n{text}\n</{label}>" for label, text in memory.items())
    depth_note = (
        f"You are a child agent at depth {depth} of at most {max_depth}."
        if depth
        else "You are the root agent."
    )
    session = f"{session_note}\n\n" if session_note else ""
    return (
        f"{depth_note}\n\n{describe_context(context)}\n\n{session}{MEMORY_HEADER}\n{blocks}\n\n"
        f"The question:\n{user_query}\n\n"
        "Start by examining `context` with code. Do not answer before you have looked."
    )


def format_cell_feedback(code_outputs: list[str]) -> str:
    return "\n\n".join(code_outputs)
