"""Celery tasks: the root execution on `rlm.root`, batches of leaf model calls on `rlm.llm`.

Leaf tasks never wait on other tasks; root tasks wait only on leaf tasks (docs/architecture.md).
A leaf task calls no model for a cancelled or finished execution. It may run twice (a redelivery
after its worker died, a redispatch of a slow batch): a call whose trace node already succeeded is
answered from the trace, so it neither calls the model again nor writes a second row. Both cost
one database read, which a message skips on its first delivery when the root sent it once, from an
attempt that is not resuming (nothing can have answered its calls yet), and the stop notices
(`stop_notices.py`) cover its send time.
"""

from __future__ import annotations

import gc
import importlib
import logging
from typing import Any

import sqlalchemy as sa
from celery import Task, current_app, shared_task
from celery.signals import worker_process_init, worker_ready

from rlm_shared.config import get_settings
from rlm_shared.contexts import load_context
from rlm_shared.database import database
from rlm_shared.models import FINISHED_STATUSES, Execution, TraceNode
from rlm_shared.prompt_slices import ContextTexts
from rlm_shared.queues import LLM_CALLS_TASK, LLM_QUEUE, ROOT_QUEUE, RUN_EXECUTION_TASK
from rlm_shared.trace_sink import SqlTraceSink, trace_engine
from rlm_worker.celery_app import worker_celery
from rlm_worker.dispatchers import CHECK_TRACE_HEADER, SENT_AT_HEADER, CeleryDispatcher
from rlm_worker.engine.subcall import execute_llm_calls
from rlm_worker.engine.types import LLMCall, LLMCallOutcome
from rlm_worker.metered import MeteredTraceSink
from rlm_worker.reaper import Reaper
from rlm_worker.runner import DurableTraceSink
from rlm_worker.runner import run_execution as run_stored_execution
from rlm_worker.services import check_sandbox_isolation, model_client, subcall_client, tool_box
from rlm_worker.stop_notices import announce_stopped, process_listener
from rlm_worker.tool_registry import ToolRegistrationError
from rlm_worker.worker_metrics import connect_worker_metrics

connect_worker_metrics()

log = logging.getLogger("rlm.tasks")


@shared_task(name=RUN_EXECUTION_TASK, acks_late=True, reject_on_worker_lost=True)
def run_execution(execution_id: str) -> str | None:
    settings = get_settings()

    def make_dispatcher(should_stop, resumed):
        return CeleryDispatcher(
            current_app,
            batch_size=settings.llm_batch_size,
            max_inflight=settings.subcall_inflight_per_execution,
            redispatch_after=settings.subcall_redispatch_seconds,
            should_stop=should_stop,
            resumed=resumed,
        )

    status = run_stored_execution(execution_id, make_dispatcher)
    if status is not None:  # stored and committed: its leaf tasks still queued need not run
        announce_stopped(settings.celery_broker_url, execution_id)
    return status


#: Prompts that came as references to a stored context are rebuilt from it (read once per worker).
_context_texts = ContextTexts(load_context)


@shared_task(name=LLM_CALLS_TASK, acks_late=True, bind=True)
def llm_calls(self: Task, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    batch = [LLMCall.from_dict(_context_texts.resolve(c)) for c in calls]
    if not batch:
        return []
    stopped, answered = _what_is_known(batch, self.request)
    if stopped:
        return [_refused(c).to_dict() for c in batch]
    fresh = [c for c in batch if c.node_id not in answered]
    queue = (self.request.delivery_info or {}).get("routing_key") or LLM_QUEUE
    sink = MeteredTraceSink(DurableTraceSink(SqlTraceSink(database.engine)), queue)
    outcomes = {o.node_id: o for o in execute_llm_calls(fresh, subcall_client(), sink)}
    outcomes.update(answered)
    return [outcomes[c.node_id].to_dict() for c in batch]


def _refused(call: LLMCall) -> LLMCallOutcome:
    return LLMCallOutcome(
        node_id=call.node_id, text=None, error="the execution was stopped", model=call.model
    )


_executions, _nodes = Execution.__table__, TraceNode.__table__
#: One round trip: the execution's status, and this batch's calls an earlier run already answered.
_KNOWN = (
    sa.select(
        _executions.c.status,
        _nodes.c.id,
        _nodes.c.prompt,
        _nodes.c.response,
        _nodes.c.input_tokens,
        _nodes.c.output_tokens,
        _nodes.c.cost_usd,
        _nodes.c.model,
    )
    .select_from(
        _executions.outerjoin(
            _nodes,
            sa.and_(
                _nodes.c.execution_id == _executions.c.id,
                _nodes.c.id.in_(sa.bindparam("node_ids", expanding=True)),
                _nodes.c.status == "succeeded",
            ),
        )
    )
    .where(_executions.c.id == sa.bindparam("execution_id"))
)


def _what_is_known(batch: list[LLMCall], request: Any) -> tuple[bool, dict[str, LLMCallOutcome]]:
    """Whether the execution is finished or cancelled (then no call reaches the model), and the
    calls of this batch an earlier run of it already answered.

    A stop notice answers the first; a first delivery of a message sent once, by an attempt that
    is not resuming, has no earlier run, so when the notices cover its send time nothing is read.
    """
    notices = process_listener()
    if notices.is_stopped(batch[0].execution_id):
        return True, {}
    first_run = not (request.delivery_info or {}).get("redelivered") and not request.get(CHECK_TRACE_HEADER)
    if first_run and notices.covers(request.get(SENT_AT_HEADER)):
        return False, {}
    return _read_known(batch)


def _read_known(batch: list[LLMCall]) -> tuple[bool, dict[str, LLMCallOutcome]]:
    """One round trip for both. With the database unreachable, nothing is known: the calls are
    made and their trace write waits for the database."""
    prompts = {c.node_id: c.prompt for c in batch}
    try:
        with trace_engine(database.engine).connect() as conn:
            rows = conn.execute(
                _KNOWN, {"node_ids": list(prompts), "execution_id": batch[0].execution_id}
            ).all()
    except sa.exc.DBAPIError as exc:
        log.warning("sub-call batch: database unreachable (%s); calling the model", type(exc).__name__)
        return False, {}
    if rows and rows[0].status in FINISHED_STATUSES:
        return True, {}
    answered = {
        row.id: LLMCallOutcome(
            node_id=row.id,
            text=row.response,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            cost_usd=row.cost_usd,
            model=row.model,
        )
        for row in rows
        if row.id is not None and row.response is not None and row.prompt == prompts[row.id]
    }
    return False, answered


def _warm_up() -> None:
    """Import the model library now (~2 s of CPU) rather than inside the first execution's time."""
    importlib.import_module("litellm")
    model_client()
    _load_tools()
    process_listener()  # its cover starts when it subscribes: the sooner, the fewer status reads
    _freeze_startup_objects()


def _load_tools() -> None:
    """Load the operator's tools at start: a worker whose RLM_TOOLS cannot load stops here, saying
    which and why, instead of failing every execution it takes."""
    try:
        tools = tool_box()
    except ToolRegistrationError as exc:
        log.critical("custom tools: %s", exc)
        raise SystemExit(f"rlm worker: custom tools: {exc}") from None
    if tools:
        log.info("custom tools offered to the REPL: %s", ", ".join(tools.names()))


def _freeze_startup_objects() -> None:
    """Keep what start-up made (litellm's and the SDK's modules, ~1 M objects) out of the cyclic GC.

    Every full collection walked them all: ~250 ms of CPU in each llm worker, every few fan-outs,
    which was half the llm workers' CPU per sub-call in the runs it hit (BENCHMARKS.md, issue 22).
    Frozen, a full collection walks only what the process made since (~5 ms). Nothing frozen is
    garbage (collected just before), and a frozen object is still freed when its count drops.
    """
    gc.collect()
    gc.freeze()


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    """A forked pool child must not share the parent's database connections (the session itself
    is removed when each task ends: rlm_worker.celery_app)."""
    database.engine.dispose(close=False)
    trace_engine(database.engine).dispose(close=False)
    _warm_up()


@worker_ready.connect
def say_sandbox_isolation(sender: Any = None, **_: Any) -> str | None:
    """A worker that takes root executions logs, once at start, which OS layers its REPL processes
    get here (docs/security.md); with SANDBOX_ISOLATION=required and one missing, that no
    execution can run on it (each would fail: no REPL starts unconfined). The line, or None."""
    queues = sender.app.amqp.queues.consume_from if sender is not None else {}
    if ROOT_QUEUE not in queues:
        return None
    try:
        return check_sandbox_isolation().summary()
    except RuntimeError as exc:  # IsolationUnavailable
        log.critical("%s: no execution can run on this worker", exc)
        return str(exc)


@worker_ready.connect
def _start_reaper(sender: Any = None, **_: Any) -> None:
    if "prefork" not in type(getattr(sender, "pool", None)).__module__:
        _warm_up()  # the tasks run in this process (a prefork pool's children warm up themselves)
    Reaper(database.engine, worker_celery(), get_settings()).start()
