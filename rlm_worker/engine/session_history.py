"""A session's earlier runs, as the REPL shows them: `context_0 … context_<n>` and `history`.

Why variables and not prompt text: a session's inputs and transcripts grow with every run, and
the root model must not pay for them on every turn (the same reason `context` is a variable).
The root's prompt names them and their sizes; the code reads what it needs.

Each distinct input travels to the REPL once, however many runs used it: `order` says which
input each run had (-1: the same as this run's, which the REPL already holds as `context`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlm_worker.engine import repl_names
from rlm_worker.engine.repl_names import NOT_LOADED, THIS_RUNS_INPUT  # noqa: F401 - re-exported

#: Characters of earlier inputs (each distinct one counted once) loaded into one REPL at most.
EARLIER_INPUTS_CHARS = 12_000_000


@dataclass
class EarlierRun:
    """One earlier run of the session: what was asked, what came of it, and the root's messages."""

    question: str
    answer: str | None
    status: str
    #: The root's conversation without its system prompt: user and assistant turns, in order.
    messages: list[dict[str, str]] = field(default_factory=list)

    def as_value(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "status": self.status,
            "messages": self.messages,
        }


@dataclass
class EarlierRuns:
    """A session's finished runs before this one, oldest first."""

    #: The distinct inputs of those runs (each once).
    contexts: list[Any] = field(default_factory=list)
    #: For each run, the index of its input in `contexts`, THIS_RUNS_INPUT or NOT_LOADED.
    order: list[int] = field(default_factory=list)
    runs: list[EarlierRun] = field(default_factory=list)

    def constant(self) -> dict[str, Any]:
        """The sandbox constant (`repl_names.SESSION_CONSTANT`) the REPL builds the names from."""
        return {
            "contexts": self.contexts,
            "order": self.order,
            "history": [run.as_value() for run in self.runs],
        }

    def describe(self) -> str:
        """Two lines for the root's first message: what the names hold, never their text."""
        count = len(self.runs)
        if not count:
            return ""
        last = repl_names.numbered_context(count)
        earlier = (
            "`context_0`" if count == 1 else f"`context_0` … `{repl_names.numbered_context(count - 1)}`"
        )
        return (
            f"This run continues a session of {count} earlier run{'s' if count > 1 else ''}. "
            f"{earlier} hold{'s' if count == 1 else ''} their inputs, oldest first; `{last}` is this "
            "run's (the same as `context`). `history` is a list of those runs, each a dict "
            '{"question", "answer", "status", "messages"} (the root\'s messages of that run; '
            "`history_<i>` is run i's messages). "
            "Read them with code when the question refers to an earlier one."
            + self._describe_missing()
        )

    def _describe_missing(self) -> str:
        missing = [repl_names.numbered_context(i) for i, which in enumerate(self.order) if which == NOT_LOADED]
        if not missing:
            return ""
        return (
            f" {', '.join(f'`{name}`' for name in missing)} {'is' if len(missing) == 1 else 'are'} None: "
            f"the session's inputs together exceed {EARLIER_INPUTS_CHARS:,} characters, so only the "
            "newest were loaded (the question and answer of every run are in `history`)."
        )
