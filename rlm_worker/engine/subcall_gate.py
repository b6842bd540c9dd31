"""`max_concurrent_subcalls`: how many of one execution's sub-calls are in flight at once.

Why here, in the engine, and not in one dispatcher: an execution's sub-calls come from many
threads (the root's cells, each `rlm_query` child's cells, batched children side by side) and go
to either dispatcher (Celery tasks, or the embedded leaf-call loop). One gate per execution, which
every leaf dispatch passes, holds the limit across all of them in both modes. With a limit, a
batch is run by that many threads, each sending one call at a time when it holds a slot, so the
model sees at most `limit` of this execution's requests at once. Without one, batches go to the
dispatcher whole, as they always did.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from rlm_worker.engine.ports import Dispatcher
from rlm_worker.engine.types import LLMCall, LLMCallOutcome

#: How often a call waiting for a slot looks whether its execution was stopped.
STOP_POLL_SECONDS = 0.1


class SubcallGate:
    """At most `limit` sub-calls of one execution in flight; None: no limit."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit) if limit else None

    def acquire(self, stopped: Callable[[], bool]) -> bool:
        """Take a slot, waiting while others hold them; False if the execution stopped first."""
        assert self._slots is not None
        while not self._slots.acquire(timeout=STOP_POLL_SECONDS):
            if stopped():
                return False
        if stopped():
            self._slots.release()
            return False
        return True

    def release(self) -> None:
        assert self._slots is not None
        self._slots.release()

    def workers_for(self, count: int, cap: int) -> int:
        """Threads for `count` concurrent things (children of one batch): the limit, if lower."""
        return max(1, min(count, cap, self.limit or cap))


def dispatch_through_gate(
    dispatcher: Dispatcher,
    calls: list[LLMCall],
    gate: SubcallGate,
    remaining_seconds: Callable[[], float],
    stopped: Callable[[], bool],
) -> list[LLMCallOutcome]:
    """`dispatcher.run_llm_calls(calls)`, never more than the gate's limit of them out at once."""
    if gate.limit is None or not calls:
        return dispatcher.run_llm_calls(calls, timeout=remaining_seconds())
    outcomes: dict[str, LLMCallOutcome] = {}
    queue = list(reversed(calls))
    queue_lock = threading.Lock()

    def next_call() -> LLMCall | None:
        with queue_lock:
            return queue.pop() if queue else None

    def run_one_at_a_time() -> None:
        while (call := next_call()) is not None:
            if not gate.acquire(stopped):
                outcomes[call.node_id] = _not_run(call)
                continue
            try:
                outcomes[call.node_id] = dispatcher.run_llm_calls([call], timeout=remaining_seconds())[0]
            finally:
                gate.release()

    workers = min(gate.limit, len(calls))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rlm-subcall") as pool:
        # each thread in the caller's context, so the sub-calls stay in the caller's trace
        futures = [pool.submit(contextvars.copy_context().run, run_one_at_a_time) for _ in range(workers)]
        for future in futures:
            future.result()
    return [outcomes[c.node_id] for c in calls]


def _not_run(call: LLMCall) -> LLMCallOutcome:
    return LLMCallOutcome(
        node_id=call.node_id,
        text=None,
        error="sub-call not run: the execution was stopped",
        model=call.model,
        answered=False,
    )
