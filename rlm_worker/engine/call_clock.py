"""When a sub-call really starts: after any wait for a slot, not when it was sent.

A batch's calls are all sent at once, then wait (the local model serves a few at a time). The
call's coroutine marks its node here; a queue that makes it wait (`LocalModelQueue`) calls
`started()` once the slot is its, so the trace tells waiting apart from running.
"""

from __future__ import annotations

from contextvars import ContextVar

from rlm_worker.engine.types import TraceNode, utcnow

_node: ContextVar[TraceNode | None] = ContextVar("rlm_call_node", default=None)


def timing(node: TraceNode) -> None:
    """The calling task's sub-call is `node`, starting now unless a queue says otherwise."""
    node.started_at = utcnow()
    _node.set(node)


def started() -> None:
    """The calling task's sub-call got its slot: it runs from now."""
    node = _node.get()
    if node is not None:
        node.started_at = utcnow()
