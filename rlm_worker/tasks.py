"""Celery tasks: the root execution on `rlm.root`, batches of leaf model calls on `rlm.llm`.

Leaf tasks never wait on other tasks; root tasks wait only on leaf tasks (docs/architecture.md).
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from celery import current_app, shared_task
from celery.signals import worker_process_init, worker_ready

from rlm_api.models import FINISHED_STATUSES, Execution, db
from rlm_api.trace_sink import SqlTraceSink
from rlm_worker.celery_app import worker_flask_app
from rlm_worker.config import get_settings
from rlm_worker.dispatchers import CeleryDispatcher
from rlm_worker.engine.subcall import execute_llm_calls
from rlm_worker.engine.types import LLMCall, LLMCallOutcome
from rlm_worker.queues import LLM_CALLS_TASK, RUN_EXECUTION_TASK
from rlm_worker.reaper import Reaper
from rlm_worker.runner import run_execution as run_stored_execution
from rlm_worker.services import model_client

log = logging.getLogger("rlm.tasks")


@shared_task(name=RUN_EXECUTION_TASK, acks_late=True, reject_on_worker_lost=True)
def run_execution(execution_id: str) -> str | None:
    settings = get_settings()

    def make_dispatcher(should_stop):
        return CeleryDispatcher(
            current_app,
            batch_size=settings.llm_batch_size,
            max_inflight=settings.subcall_inflight_per_execution,
            redispatch_after=settings.subcall_redispatch_seconds,
            should_stop=should_stop,
        )

    return run_stored_execution(execution_id, make_dispatcher)


@shared_task(name=LLM_CALLS_TASK, acks_late=True)
def llm_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    batch = [LLMCall.from_dict(c) for c in calls]
    if batch and _execution_stopped(batch[0].execution_id):
        return [
            LLMCallOutcome(node_id=c.node_id, text=None, error="the execution was stopped", model=c.model).to_dict()
            for c in batch
        ]
    outcomes = execute_llm_calls(batch, model_client(), SqlTraceSink(db.engine))
    return [o.to_dict() for o in outcomes]


def _execution_stopped(execution_id: str) -> bool:
    """A sub-call of a cancelled or finished execution is never sent to the model."""
    with db.engine.connect() as conn:
        status = conn.scalar(sa.select(Execution.status).where(Execution.id == execution_id))
    return status in FINISHED_STATUSES


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    """A forked pool child must not share the parent's database connections (the session itself
    is removed when each task's app context ends)."""
    with worker_flask_app().app_context():
        db.engine.dispose(close=False)


@worker_ready.connect
def _start_reaper(sender: Any = None, **_: Any) -> None:
    app = worker_flask_app()
    with app.app_context():
        Reaper(db.engine, app.extensions["celery"], get_settings()).start()
