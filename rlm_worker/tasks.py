"""Celery tasks: the root execution on `rlm.root`, batches of leaf model calls on `rlm.llm`.

Leaf tasks never wait on other tasks; root tasks wait only on leaf tasks (docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

from celery import current_app, shared_task
from celery.signals import worker_process_init

from rlm_api.models import db
from rlm_api.trace_sink import SqlTraceSink
from rlm_worker.celery_app import worker_flask_app
from rlm_worker.config import get_settings
from rlm_worker.dispatchers import CeleryDispatcher
from rlm_worker.engine.subcall import execute_llm_calls
from rlm_worker.engine.types import LLMCall
from rlm_worker.queues import LLM_CALLS_TASK, RUN_EXECUTION_TASK
from rlm_worker.runner import run_execution as run_stored_execution
from rlm_worker.services import model_client


@shared_task(name=RUN_EXECUTION_TASK, acks_late=True, reject_on_worker_lost=True)
def run_execution(execution_id: str) -> str | None:
    dispatcher = CeleryDispatcher(current_app, batch_size=get_settings().llm_batch_size)
    return run_stored_execution(execution_id, dispatcher)


@shared_task(name=LLM_CALLS_TASK, acks_late=True)
def llm_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    outcomes = execute_llm_calls([LLMCall.from_dict(c) for c in calls], model_client(), SqlTraceSink(db.engine))
    return [o.to_dict() for o in outcomes]


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    """A forked pool child must not share the parent's database connections (the session itself
    is removed when each task's app context ends)."""
    with worker_flask_app().app_context():
        db.engine.dispose(close=False)
