"""The names the REPL owns: put back after every cell, never exported as session variables.

Why one list: the loop (reading a FINAL written in prose), the sandbox (restoring the names after
each cell and telling the model when a cell rebound one) and the prompt must agree on them. A
cell that assigns `context = ...` or `llm_query = None` would otherwise break every later cell of
the run; the reference implementation restores the same names.
"""

from __future__ import annotations

import re

#: The REPL's functions (and the `memory` object): the loop never answers with one of these.
REPL_FUNCTIONS = frozenset(
    {
        "llm_query",
        "llm_query_batched",
        "rlm_query",
        "rlm_query_batched",
        "rank_passages",
        "rank_by_meaning",
        "memory",
        "FINAL",
        "FINAL_VAR",
        "SHOW_VARS",
    }
)

#: The REPL's data: this run's input, a session's earlier runs, the compacted turns, the answer dict.
CONTEXT = "context"
HISTORY = "history"
COMPACTION_HISTORY = "compaction_history"
ANSWER = "answer"
REPL_DATA = frozenset({CONTEXT, HISTORY, COMPACTION_HISTORY, ANSWER})

_NUMBERED = re.compile(r"(context|history)_\d+")


def numbered_context(index: int) -> str:
    """`context_<index>`: a session's input number `index` (0 is its first run's)."""
    return f"context_{index}"


def numbered_history(index: int) -> str:
    """`history_<index>`: the root messages of a session's run number `index` (as the reference)."""
    return f"history_{index}"


def is_reserved(name: str) -> bool:
    """Whether the REPL owns `name` (a function, its data, a session's `context_<n>`/`history_<n>`)."""
    return name in REPL_FUNCTIONS or name in REPL_DATA or bool(_NUMBERED.fullmatch(name))


#: The sandbox constant that carries a session's earlier inputs and `history` into the REPL; it
#: starts with "_", so it never becomes a REPL name itself.
SESSION_CONSTANT = "_session"

#: The input of this run in `EarlierRuns.order` (engine/session_history.py): the REPL's own `context`.
THIS_RUNS_INPUT = -1
#: An earlier input left out (`context_<i>` is None): the inputs together would not fit the
#: REPL's start-up message (64 MiB; a character may take 4 bytes), so the newest are loaded first.
NOT_LOADED = -2
