"""Whether an execution found an answer: "not in the text" is an outcome, not an answer.

A root model (or a strategy) that finds nothing answers `FINAL("NONE")`; the execution still
succeeds, and its record says `answer_found: false`, so the CLI, the API and the dashboard can
say so instead of showing "NONE" as if it were the answer.
"""

from __future__ import annotations

import re

#: The final answer that means "the context does not answer the question".
NOT_FOUND = "NONE"
_NOT_FOUND = re.compile(r"^\W*none\W*$", re.IGNORECASE)


def answer_found(status: str, final_answer: str | None) -> bool | None:
    """True or False for a succeeded execution; None when it did not finish with an answer."""
    if status != "succeeded" or final_answer is None:
        return None
    return not (not final_answer.strip() or _NOT_FOUND.match(final_answer))
