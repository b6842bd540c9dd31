"""Dispatcher adapters: Celery tasks on `rlm.llm` (distributed) or the in-process pool (embedded)."""

from __future__ import annotations

from celery import Celery, group
from celery.exceptions import TimeoutError as CeleryTimeout

from rlm_worker.engine.ports import ModelClient, TraceSink
from rlm_worker.engine.subcall import execute_llm_calls
from rlm_worker.engine.types import LLMCall, LLMCallOutcome
from rlm_worker.queues import LLM_CALLS_TASK, LLM_QUEUE


def _failed(calls: list[LLMCall], reason: str) -> list[LLMCallOutcome]:
    return [LLMCallOutcome(node_id=c.node_id, text=None, error=reason, model=c.model) for c in calls]


class CeleryDispatcher:
    """Puts every batch of sub-calls on `rlm.llm` at once as one group and waits for all of it.

    Several calls ride in one task message (`batch_size`), which halves the broker's per-call
    overhead; each still gets its own trace node.
    """

    def __init__(self, celery: Celery, batch_size: int = 8) -> None:
        self.celery = celery
        self.batch_size = max(1, batch_size)

    def run_llm_calls(self, calls: list[LLMCall], timeout: float | None = None) -> list[LLMCallOutcome]:
        if not calls:
            return []
        batches = [calls[i : i + self.batch_size] for i in range(0, len(calls), self.batch_size)]
        job = group(
            self.celery.signature(LLM_CALLS_TASK, args=([c.to_dict() for c in batch],), queue=LLM_QUEUE)
            for batch in batches
        )
        result = job.apply_async()
        try:
            per_batch = result.get(timeout=timeout, propagate=False, disable_sync_subtasks=False)
        except CeleryTimeout:
            result.revoke()
            return _failed(calls, "sub-call timed out: the execution's time limit was reached")
        finally:
            result.forget()
        outcomes: list[LLMCallOutcome] = []
        for batch, value in zip(batches, per_batch, strict=True):
            if isinstance(value, list):
                outcomes.extend(LLMCallOutcome.from_dict(item) for item in value)
            else:
                outcomes.extend(_failed(batch, f"sub-call task failed: {value!r}"))
        return outcomes


class InProcessDispatcher:
    """Embedded mode: sub-calls run on this process's thread pool, traced the same way."""

    def __init__(self, client: ModelClient, sink: TraceSink) -> None:
        self.client = client
        self.sink = sink

    def run_llm_calls(self, calls: list[LLMCall], timeout: float | None = None) -> list[LLMCallOutcome]:
        return execute_llm_calls(calls, self.client, self.sink)
