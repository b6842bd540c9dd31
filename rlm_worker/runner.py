"""Run one stored execution: claim it, drive the engine, store the outcome and the session state.

Both adapters call this: the Celery root task and the embedded launcher. Only the dispatcher differs.
A second attempt (the first worker died) resumes from the recorded trace: see `recorded_nodes`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import sqlalchemy as sa

from rlm_api.contexts import load_context
from rlm_api.models import Execution, Session, TraceNode, db
from rlm_api.trace_sink import SqlTraceSink
from rlm_worker.config import get_settings
from rlm_worker.engine.loop import Engine, ExecutionRequest, ExecutionResult
from rlm_worker.engine.options import ExecutionOptions
from rlm_worker.engine.ports import Dispatcher
from rlm_worker.engine.types import TraceNode as EngineNode
from rlm_worker.engine.types import utcnow
from rlm_worker.lease import WORKER_ID, Heartbeat, claim
from rlm_worker.services import model_client, sandbox_factory

log = logging.getLogger("rlm.runner")

_NODE_FIELDS = [f for f in EngineNode.__dataclass_fields__]


def status_probe(execution_id: str, heartbeat: Heartbeat | None = None, every: float = 0.5) -> Callable[[], bool]:
    """A cheap `is_cancelled` for the engine: reads the status at most every `every` seconds.

    Also true when our lease was lost to another worker: then this attempt must stop.
    """
    state = {"at": 0.0, "stop": False}

    def probe() -> bool:
        now = time.monotonic()
        if not state["stop"] and now - state["at"] >= every:
            state["at"] = now
            try:
                with db.engine.connect() as conn:
                    status = conn.scalar(sa.select(Execution.status).where(Execution.id == execution_id))
            except Exception:  # a database restart must not stop the run; look again next time
                return False
            state["stop"] = status == "cancelled" or bool(heartbeat and heartbeat.lost)
        return state["stop"]

    return probe


def recorded_nodes(execution_id: str) -> dict[str, EngineNode]:
    """Finished nodes of earlier attempts, so a resumed run does not pay twice."""
    rows = db.session.scalars(
        sa.select(TraceNode).where(TraceNode.execution_id == execution_id, TraceNode.status == "succeeded")
    )
    return {row.id: EngineNode(**{f: getattr(row, f) for f in _NODE_FIELDS}) for row in rows}


def build_request(execution: Execution, session: Session | None) -> ExecutionRequest:
    options = dict(execution.options or {})
    return ExecutionRequest(
        execution_id=execution.id,
        user_query=execution.user_query,
        context=load_context(execution.context_id),
        root_model=execution.root_model,
        sub_model=execution.sub_model,
        options=ExecutionOptions(**options),
        memory=dict(session.memory) if session else {},
        variables=dict(session.variables) if session else {},
        recorded=recorded_nodes(execution.id) if execution.attempts > 1 else {},
        keep_variables=session is not None,
    )


DispatcherFactory = Callable[[Callable[[], bool]], Dispatcher]


def run_execution(execution_id: str, make_dispatcher: DispatcherFactory) -> str | None:
    """Run it if we can claim it; drop it if it finished or another worker holds it. Returns the status.

    `make_dispatcher(should_stop)` builds the dispatcher; `should_stop` turns true on cancellation
    or a lost lease, so waits on sub-calls end too.
    """
    settings = get_settings()
    if not claim(db.engine, execution_id, settings.lease_seconds, settings.max_attempts):
        status = db.session.scalar(sa.select(Execution.status).where(Execution.id == execution_id))
        log.info("execution %s not claimed (status %s); dropping this delivery", execution_id, status)
        return None
    execution = db.session.get(Execution, execution_id)
    assert execution is not None
    session = db.session.get(Session, execution.session_id) if execution.session_id else None
    if execution.attempts > 1:
        log.info("execution %s: attempt %d resumes from its trace", execution_id, execution.attempts)
    with Heartbeat(db.engine, execution_id, settings.lease_seconds) as heartbeat:
        should_stop = status_probe(execution_id, heartbeat)
        engine = Engine(model_client(), make_dispatcher(should_stop), SqlTraceSink(db.engine), sandbox_factory())
        try:
            request = build_request(execution, session)
            db.session.commit()  # end the read transaction; the run takes a while
            result = engine.run(request, is_cancelled=should_stop)
        except Exception as exc:  # the engine failing is a failed execution, never a lost one
            log.exception("execution %s crashed", execution_id)
            db.session.rollback()
            _finish(execution_id, status="failed", error=f"internal error: {type(exc).__name__}: {exc}")
            return "failed"
    if heartbeat.lost:
        log.warning("execution %s: lease lost to another worker; discarding this attempt", execution_id)
        return None
    return _store_result(execution_id, result)


def _store_result(execution_id: str, result: ExecutionResult) -> str:
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
    execution.lease_expires_at = None
    if execution.session_id:
        session = db.session.get(Session, execution.session_id)
        if session is not None:
            session.memory = result.memory
            session.variables = result.variables
    db.session.commit()
    return result.status


def _finish(execution_id: str, status: str, error: str) -> None:
    db.session.execute(
        sa.update(Execution)
        .where(Execution.id == execution_id, Execution.worker == WORKER_ID)
        .values(status=status, error=error, finished_at=utcnow(), lease_expires_at=None)
    )
    db.session.commit()
