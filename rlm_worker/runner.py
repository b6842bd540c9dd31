"""Run one stored execution: load it, drive the engine, store the outcome and the session state.

Both adapters call this: the Celery root task and the embedded launcher. Only the dispatcher differs.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import sqlalchemy as sa

from rlm_api.contexts import load_context
from rlm_api.models import Execution, Session, db
from rlm_api.trace_sink import SqlTraceSink
from rlm_worker.engine.loop import Engine, ExecutionRequest
from rlm_worker.engine.options import ExecutionOptions
from rlm_worker.engine.ports import Dispatcher
from rlm_worker.engine.types import utcnow
from rlm_worker.services import model_client, sandbox_factory

log = logging.getLogger("rlm.runner")


def _cancel_probe(execution_id: str, every: float = 0.5) -> Callable[[], bool]:
    """A cheap `is_cancelled` for the engine: reads the status at most every `every` seconds."""
    state = {"at": 0.0, "cancelled": False}

    def probe() -> bool:
        now = time.monotonic()
        if not state["cancelled"] and now - state["at"] >= every:
            state["at"] = now
            with db.engine.connect() as conn:
                status = conn.scalar(sa.select(Execution.status).where(Execution.id == execution_id))
            state["cancelled"] = status == "cancelled"
        return state["cancelled"]

    return probe


def run_execution(execution_id: str, dispatcher: Dispatcher) -> str | None:
    """Run it unless it already finished (a late redelivery). Returns the final status."""
    execution = db.session.get(Execution, execution_id)
    if execution is None:
        log.warning("execution %s does not exist; dropping", execution_id)
        return None
    if execution.is_finished:
        log.info("execution %s already %s; dropping redelivery", execution_id, execution.status)
        return execution.status
    execution.status = "running"
    execution.started_at = execution.started_at or utcnow()
    execution.worker = socket.gethostname()
    db.session.commit()

    session = db.session.get(Session, execution.session_id) if execution.session_id else None
    request = ExecutionRequest(
        execution_id=execution.id,
        user_query=execution.user_query,
        context=load_context(execution.context_id),
        root_model=execution.root_model,
        sub_model=execution.sub_model,
        options=ExecutionOptions(**(execution.options or {})),
        memory=dict(session.memory) if session else {},
        variables=dict(session.variables) if session else {},
    )
    engine = Engine(model_client(), dispatcher, SqlTraceSink(db.engine), sandbox_factory())
    try:
        result = engine.run(request, is_cancelled=_cancel_probe(execution.id))
    except Exception as exc:  # the engine failing is a failed execution, never a lost one
        log.exception("execution %s crashed", execution_id)
        db.session.rollback()
        _finish(execution_id, status="failed", error=f"internal error: {type(exc).__name__}: {exc}")
        return "failed"

    db.session.expire_all()
    execution = db.session.get(Execution, execution_id)
    assert execution is not None
    if execution.status == "cancelled":
        result.status = "cancelled"
    execution.status = result.status
    execution.final_answer = result.final_answer
    execution.error = result.error
    execution.guard_hit = result.guard_hit
    execution.forced_final = result.forced_final
    execution.iterations = result.iterations
    execution.total_input_tokens = result.input_tokens
    execution.total_output_tokens = result.output_tokens
    execution.total_cost_usd = result.cost_usd
    execution.llm_calls = result.llm_calls
    execution.sub_calls = result.sub_calls
    execution.finished_at = utcnow()
    if session is not None:
        session = db.session.get(Session, session.id)
        if session is not None:
            session.memory = result.memory
            session.variables = result.variables
    db.session.commit()
    return result.status


def _finish(execution_id: str, status: str, error: str) -> None:
    db.session.execute(
        sa.update(Execution)
        .where(Execution.id == execution_id)
        .values(status=status, error=error, finished_at=utcnow())
    )
    db.session.commit()
