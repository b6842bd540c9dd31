"""Embedded mode's launcher: executions run in this process, sub-calls on a thread pool, no Celery.

`rlm serve` hands executions to a small pool of root threads (`submit_embedded`); `rlm run` runs
its one execution in the foreground thread (`run_embedded`) and watches a `SubCallTally` to show
progress. Either way the engine, the runner and the trace are the ones the Celery workers use;
only the dispatcher differs.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from flask import Flask

from rlm_api.models import db
from rlm_api.trace_sink import SqlTraceSink
from rlm_worker.dispatchers import InProcessDispatcher
from rlm_worker.engine.ports import Dispatcher, ModelClient
from rlm_worker.engine.types import LLMCall, LLMCallOutcome, ModelReply
from rlm_worker.runner import run_execution
from rlm_worker.services import model_client

log = logging.getLogger("rlm.embedded")
_roots = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rlm-root")


class SubCallTally:
    """Sub-calls handed to the pool and answered so far, counted as they happen.

    The trace records a batch of sub-calls when the whole batch is done; this counts each one
    the moment it returns, so a progress display can move during a long batch.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.submitted = 0
        self.answered = 0

    def add_submitted(self, count: int) -> None:
        with self._lock:
            self.submitted += count

    def add_answered(self) -> None:
        with self._lock:
            self.answered += 1

    def read(self) -> tuple[int, int]:
        """(answered, submitted)."""
        with self._lock:
            return self.answered, self.submitted


class _TalliedClient:
    def __init__(self, inner: ModelClient, tally: SubCallTally) -> None:
        self.inner, self.tally = inner, tally

    def complete(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        try:
            return self.inner.complete(model, messages)
        finally:
            self.tally.add_answered()


class _TalliedDispatcher:
    def __init__(self, inner: Dispatcher, tally: SubCallTally) -> None:
        self.inner, self.tally = inner, tally

    def run_llm_calls(self, calls: list[LLMCall], timeout: float | None = None) -> list[LLMCallOutcome]:
        self.tally.add_submitted(len(calls))
        return self.inner.run_llm_calls(calls, timeout)


def embedded_dispatcher(tally: SubCallTally | None = None) -> Dispatcher:
    """The in-process dispatcher over the app's database; counted into `tally` when given."""
    client: ModelClient = model_client()
    if tally is None:
        return InProcessDispatcher(client, SqlTraceSink(db.engine))
    return _TalliedDispatcher(
        InProcessDispatcher(_TalliedClient(client, tally), SqlTraceSink(db.engine)), tally
    )


def run_embedded(app: Flask, execution_id: str, tally: SubCallTally | None = None) -> str | None:
    """Run one execution in this thread, inside the app's context. Returns the final status."""
    with app.app_context():
        # Sub-calls in this process end with the engine's own stop checks; no separate wait to cut.
        return run_execution(execution_id, lambda should_stop, resumed: embedded_dispatcher(tally))


def submit_embedded(app: Flask, execution_id: str) -> Future:
    future = _roots.submit(run_embedded, app, execution_id)
    future.add_done_callback(
        lambda f: f.exception() and log.error("execution %s: %s", execution_id, f.exception())
    )
    return future
