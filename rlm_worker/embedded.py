"""Embedded mode's launcher: executions run on an in-process thread pool instead of Celery."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

from flask import Flask

from rlm_api.models import db
from rlm_api.trace_sink import SqlTraceSink
from rlm_worker.dispatchers import InProcessDispatcher
from rlm_worker.runner import run_execution
from rlm_worker.services import model_client

log = logging.getLogger("rlm.embedded")
_roots = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rlm-root")


def run_embedded(app: Flask, execution_id: str) -> str | None:
    """Run one execution in this thread, inside the app's context."""
    with app.app_context():
        dispatcher = InProcessDispatcher(model_client(), SqlTraceSink(db.engine))
        return run_execution(execution_id, dispatcher)


def submit_embedded(app: Flask, execution_id: str) -> Future:
    future = _roots.submit(run_embedded, app, execution_id)
    future.add_done_callback(lambda f: f.exception() and log.error("execution %s: %s", execution_id, f.exception()))
    return future
