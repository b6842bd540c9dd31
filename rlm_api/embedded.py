"""Embedded mode's launcher: executions run in this process, sub-calls on its leaf-call loop, no Celery.

`rlm serve` hands executions to a small pool of root threads (`submit_embedded`); `rlm run` runs
its one execution in the foreground thread (`run_embedded`). Either way the engine, the runner and
the trace are the ones the Celery workers use; only the dispatcher differs, and it keeps the
guards itself (it waits on its own sub-calls): cancellation and the time limit end a batch at
once. `stop_all` is how a process that is shutting down (Ctrl-C, SIGTERM) ends its executions:
it records them `cancelled` with its reason, and their runs stop through the ordinary cancel path.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import sqlalchemy as sa
from flask import Flask

from rlm_api.database import db
from rlm_shared.models import Execution
from rlm_shared.trace_sink import SqlTraceSink
from rlm_worker.dispatchers import InProcessDispatcher
from rlm_worker.engine.ports import Dispatcher
from rlm_worker.engine.types import utcnow
from rlm_worker.metered import IN_PROCESS_QUEUE, MeteredTraceSink
from rlm_worker.runner import run_execution
from rlm_worker.services import model_client

log = logging.getLogger("rlm.embedded")
_roots = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rlm-root")
_running: dict[str, Flask] = {}  # executions this process runs -> their app
_running_lock = threading.Lock()


def embedded_dispatcher(should_stop: Callable[[], bool] | None = None) -> Dispatcher:
    """The in-process dispatcher over the app's database, stopping when `should_stop()` says so."""
    sink = MeteredTraceSink(SqlTraceSink(db.engine), IN_PROCESS_QUEUE)
    return InProcessDispatcher(model_client(), sink, should_stop=should_stop)


def run_embedded(app: Flask, execution_id: str) -> str | None:
    """Run one execution in this thread, inside the app's context. Returns the final status."""
    with _running_lock:
        _running[execution_id] = app
    try:
        with app.app_context():
            return run_execution(execution_id, lambda should_stop, resumed: embedded_dispatcher(should_stop))
    finally:
        with _running_lock:
            _running.pop(execution_id, None)


def submit_embedded(app: Flask, execution_id: str) -> Future:
    with _running_lock:  # counted from now: a shutdown cancels it even before a root thread is free
        _running[execution_id] = app
    # In the caller's context, so a traced request's execution continues its trace.
    future = _roots.submit(contextvars.copy_context().run, run_embedded, app, execution_id)
    future.add_done_callback(
        lambda f: f.exception() and log.error("execution %s: %s", execution_id, f.exception())
    )
    return future


def running_executions() -> list[str]:
    with _running_lock:
        return list(_running)


def mark_cancelled(app: Flask, execution_id: str, reason: str) -> None:
    """Record `execution_id` cancelled with `reason` unless it already ended (its run then stops)."""
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(
                sa.update(Execution)
                .where(Execution.id == execution_id, Execution.status.in_(("queued", "running")))
                .values(status="cancelled", error=reason, finished_at=utcnow())
            )


def stop_all(reason: str, wait: float) -> list[str]:
    """Cancel every execution this process runs, with `reason`, and wait up to `wait` seconds for
    their runs to end. Returns the ids still running after the wait."""
    with _running_lock:
        running = dict(_running)
    for execution_id, app in running.items():
        try:
            mark_cancelled(app, execution_id, reason)
        except Exception as exc:  # the database may be gone too; the exit goes on
            log.warning("could not record execution %s cancelled: %s", execution_id, exc)
    deadline = time.monotonic() + wait
    while running_executions() and time.monotonic() < deadline:
        time.sleep(0.05)
    return running_executions()
