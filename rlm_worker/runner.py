"""Run one stored execution: claim it, drive the engine, store the outcome and the session state.

Both adapters call this: the Celery root task and the embedded launcher. Only the dispatcher differs.
A second attempt (the first worker died) resumes from the recorded trace: see `recorded_nodes`.
Database writes wait out a database restart (`through_outage`) instead of failing the execution.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from rlm_shared.config import get_settings
from rlm_shared.contexts import load_context
from rlm_shared.database import database
from rlm_shared.live_totals import trace_totals
from rlm_shared.models import FINISHED_STATUSES, Context, Execution, Session, TraceNode
from rlm_shared.storable import NOTE, storable
from rlm_shared.strategies import root_program
from rlm_shared.trace_sink import SqlTraceSink, note_on_node
from rlm_worker import metrics
from rlm_worker.engine.compaction import CompactionPolicy
from rlm_worker.engine.loop import Engine, ExecutionRequest, ExecutionResult
from rlm_worker.engine.options import ExecutionOptions
from rlm_worker.engine.ports import Dispatcher, Sandbox, SandboxFactory, TraceSink
from rlm_worker.engine.session_history import (
    EARLIER_INPUTS_CHARS,
    NOT_LOADED,
    THIS_RUNS_INPUT,
    EarlierRun,
    EarlierRuns,
)
from rlm_worker.engine.types import TraceNode as EngineNode
from rlm_worker.engine.types import utcnow
from rlm_worker.lease import Heartbeat, claim, holds_lease
from rlm_worker.services import model_client, process_sandboxes, sandbox_factory, tool_box

log = logging.getLogger("rlm.runner")

_NODE_FIELDS = [f for f in EngineNode.__dataclass_fields__]
#: How long a database write waits for the database to come back before it gives up.
DATABASE_OUTAGE_SECONDS = 120.0

#: How long past its time limit a busy cell may run before its REPL process is killed.
STOP_GRACE_SECONDS = 0.5
#: What a REPL killed by a stop says (the cell's error, the code node's error).
STOPPED_CANCELLED = "the REPL was killed: the execution was cancelled"
STOPPED_TIME_LIMIT = "the REPL was killed: the execution's time limit was reached"

T = TypeVar("T")

#: What a tenant reads when a write failed: never the database's own message (it quotes the SQL).
OUTCOME_NOT_STORED = "internal error: the run's outcome could not be stored (the details are in the worker's log)"
DATABASE_ERROR = "internal error: a database write failed (the details are in the worker's log)"


def tenant_error(exc: BaseException) -> str:
    """The `error` a tenant reads for a crash: the exception's own words, unless it comes from the
    database, whose messages hold SQL statements and parameters (other rows' text, our schema)."""
    if isinstance(exc, sa.exc.SQLAlchemyError) or type(exc).__module__.startswith("psycopg"):
        return DATABASE_ERROR
    return f"internal error: {type(exc).__name__}: {exc}"


def database_down(exc: BaseException) -> bool:
    """A lost or refused connection (a restart, a failover), as opposed to a bad statement."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    return exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)


def through_outage(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`work(*args, **kwargs)`, tried again while the database is unreachable (up to a limit)."""
    retrying = Retrying(
        retry=retry_if_exception(database_down),
        stop=stop_after_delay(DATABASE_OUTAGE_SECONDS),
        wait=wait_exponential(multiplier=0.1, max=2.0),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "database unreachable (%s); retrying", type(state.outcome.exception()).__name__
        ),
    )
    return retrying(work, *args, **kwargs)


def in_transaction(work: Callable[[], T]) -> T:
    """Run `work` in a session transaction and commit, again from the start if the database dropped."""

    def once() -> T:
        try:
            result = work()
            database.session.commit()
            return result
        except BaseException:
            database.session.rollback()
            raise

    return through_outage(once)


class DurableTraceSink:
    """A TraceSink whose writes wait out a database restart: a run pauses rather than fails."""

    def __init__(self, inner: TraceSink) -> None:
        self.inner = inner

    def node_started(self, node: EngineNode) -> None:
        through_outage(self.inner.node_started, node)

    def node_finished(self, node: EngineNode) -> None:
        through_outage(self.inner.node_finished, node)

    def nodes_recorded(self, nodes: list[EngineNode]) -> None:
        through_outage(self.inner.nodes_recorded, nodes)

    def memory_snapshot(self, execution_id: str, node_id: str | None, blocks: dict[str, str]) -> None:
        through_outage(self.inner.memory_snapshot, execution_id, node_id, blocks)

    def execution_progress(self, execution_id: str, fields: dict[str, Any]) -> None:
        through_outage(self.inner.execution_progress, execution_id, fields)


def status_probe(
    execution_id: str, heartbeat: Heartbeat | None = None, every: float = 0.5
) -> Callable[[], bool]:
    """A cheap `is_cancelled` for the engine: reads the status at most every `every` seconds.

    Also true when our lease was lost to another worker: then this attempt must stop.
    """
    state = {"at": 0.0, "stop": False}

    def probe() -> bool:
        now = time.monotonic()
        if not state["stop"] and now - state["at"] >= every:
            state["at"] = now
            try:
                with database.engine.connect() as conn:
                    status = conn.scalar(sa.select(Execution.status).where(Execution.id == execution_id))
            except Exception:  # a database restart must not stop the run; look again next time
                return False
            state["stop"] = status == "cancelled" or bool(heartbeat and heartbeat.lost)
        return state["stop"]

    return probe


class StoppableSandboxes:
    """The sandbox factory of one run. It remembers the REPL processes it started, so a stop
    (cancellation, a lost lease, the time limit) kills them even in the middle of a busy cell."""

    def __init__(self, factory: SandboxFactory) -> None:
        self.factory = factory
        self.stopped: str | None = None  # why, once stopped
        self._made: list[weakref.ref[Sandbox]] = []
        self._lock = threading.Lock()

    def __call__(self, context: Any, variables: dict[str, Any], constants: dict[str, Any]) -> Sandbox:
        sandbox = self.factory(context, variables, constants)
        with self._lock:
            self._made.append(weakref.ref(sandbox))
            if self.stopped:
                _kill_repl(sandbox, self.stopped)
        return sandbox

    def stop_all(self, reason: str) -> None:
        with self._lock:
            self.stopped = reason
            for ref in self._made:
                sandbox = ref()
                if sandbox is not None:
                    _kill_repl(sandbox, reason)


def _kill_repl(sandbox: Sandbox, reason: str) -> None:
    """Kill the REPL's process (and reap it); the running cell then fails with `reason`."""
    stop = getattr(sandbox, "stop", None)
    if stop is not None:  # SubprocessSandbox: it kills its process group and remembers why
        stop(reason)
        return
    pid = getattr(sandbox, "pid", None)
    if pid:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class StopWatch(threading.Thread):
    """Calls `on_stop(reason)` once, as soon as `should_stop()` turns true or `deadline` passes."""

    def __init__(
        self, should_stop: Callable[[], bool], deadline: float, on_stop: Callable[[str], None]
    ) -> None:
        super().__init__(name="rlm-stopwatch", daemon=True)
        self.should_stop, self.deadline, self.on_stop = should_stop, deadline, on_stop
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.25):
            if self.should_stop():
                self.on_stop(STOPPED_CANCELLED)
                return
            if time.monotonic() >= self.deadline:
                self.on_stop(STOPPED_TIME_LIMIT)
                return

    def __enter__(self) -> StopWatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()


def recorded_nodes(execution_id: str) -> dict[str, EngineNode]:
    """What earlier attempts already paid for, so a resumed run does not pay twice: finished
    nodes, and model turns whose reply arrived (their code may have been cut short)."""
    rows = database.session.scalars(
        sa.select(TraceNode).where(
            TraceNode.execution_id == execution_id,
            sa.or_(
                TraceNode.status == "succeeded",
                sa.and_(TraceNode.kind == "iteration", TraceNode.response.is_not(None)),
            ),
        )
    )
    return {row.id: EngineNode(**{f: getattr(row, f) for f in _NODE_FIELDS}) for row in rows}


def build_request(execution: Execution, session: Session | None) -> ExecutionRequest:
    options = ExecutionOptions(**dict(execution.options or {}))
    program = root_program(options.strategy, options.root_code)  # a fixed root program, if asked for
    return ExecutionRequest(
        execution_id=execution.id,
        user_query=execution.user_query,
        context=load_context(execution.context_id),
        root_model=execution.root_model,
        sub_model=execution.sub_model,
        options=options,
        root_code=program[0] if program else None,
        root_code_label=program[1] if program else "root_code",
        memory=dict(session.memory) if session else {},
        variables=dict(session.variables) if session else {},
        recorded=recorded_nodes(execution.id) if execution.attempts > 1 else {},
        keep_variables=session is not None,
        earlier_runs=earlier_runs(execution) if session else EarlierRuns(),
    )


def earlier_runs(execution: Execution, budget_chars: int = EARLIER_INPUTS_CHARS) -> EarlierRuns:
    """The session's finished runs created before `execution`, oldest first: their inputs (each
    distinct context read once, from the stored contexts, the newest first while `budget_chars`
    lasts) and their root conversations (read back from their trace: each root turn's prompt and
    reply)."""
    rows = database.session.execute(
        sa.select(
            Execution.id, Execution.context_id, Execution.user_query, Execution.final_answer, Execution.status
        )
        .where(
            Execution.session_id == execution.session_id,
            Execution.id != execution.id,
            Execution.created_at <= execution.created_at,
            Execution.status.in_(FINISHED_STATUSES),  # a run still going has no outcome yet
        )
        .order_by(Execution.created_at, Execution.id)
    ).all()
    if not rows:
        return EarlierRuns()
    turns: dict[str, list[dict[str, str]]] = {row.id: [] for row in rows}
    root_turns = database.session.execute(
        sa.select(TraceNode.execution_id, TraceNode.prompt, TraceNode.response)
        .where(
            TraceNode.execution_id.in_(list(turns)),
            TraceNode.kind == "iteration",
            TraceNode.depth == 0,
        )
        .order_by(TraceNode.execution_id, TraceNode.path)
    )
    for run_id, prompt, response in root_turns:
        turns[run_id].append({"role": "user", "content": prompt or ""})
        if response is not None:
            turns[run_id].append({"role": "assistant", "content": response})
    earlier_ids = {row.context_id for row in rows} - {execution.context_id}
    sizes = dict(
        database.session.execute(
            sa.select(Context.id, Context.size_chars).where(Context.id.in_(earlier_ids))
        ).all()
    )
    loaded: dict[str, int] = {}
    contexts: list[Any] = []
    room = budget_chars
    for row in reversed(rows):  # the newest inputs first, while they fit
        if row.context_id in sizes and row.context_id not in loaded and sizes[row.context_id] <= room:
            room -= sizes[row.context_id]
            loaded[row.context_id] = len(contexts)
            contexts.append(load_context(row.context_id))
    order = [
        THIS_RUNS_INPUT if row.context_id == execution.context_id else loaded.get(row.context_id, NOT_LOADED)
        for row in rows
    ]
    runs = [EarlierRun(row.user_query, row.final_answer, row.status, turns[row.id]) for row in rows]
    return EarlierRuns(contexts=contexts, order=order, runs=runs)


def _load_request(execution_id: str) -> ExecutionRequest:
    execution = database.session.get(Execution, execution_id, populate_existing=True)
    assert execution is not None
    session = database.session.get(Session, execution.session_id) if execution.session_id else None
    return build_request(execution, session)


DispatcherFactory = Callable[[Callable[[], bool], bool], Dispatcher]


def run_execution(execution_id: str, make_dispatcher: DispatcherFactory) -> str | None:
    """Run it if we can claim it; drop it if it finished or another worker holds it. Returns the
    status it stored (None: dropped, or superseded by another attempt).

    `make_dispatcher(should_stop, resumed)` builds the dispatcher; `should_stop` turns true on
    cancellation or a lost lease, so waits on sub-calls end too; `resumed`: an earlier attempt ran.
    """
    settings = get_settings()
    attempt = through_outage(claim, database.engine, execution_id, settings.lease_seconds, settings.max_attempts)
    if attempt is None:
        status = database.session.scalar(sa.select(Execution.status).where(Execution.id == execution_id))
        database.session.rollback()
        log.info("execution %s not claimed (status %s); dropping this delivery", execution_id, status)
        return None
    if attempt > 1:
        log.info("execution %s: attempt %d resumes from its trace", execution_id, attempt)
    with Heartbeat(database.engine, execution_id, settings.lease_seconds, attempt) as heartbeat:
        should_stop = status_probe(execution_id, heartbeat)
        sink = DurableTraceSink(SqlTraceSink(database.engine))
        sandboxes = StoppableSandboxes(sandbox_factory())
        dispatcher = make_dispatcher(should_stop, attempt > 1)
        engine = Engine(
            model_client(),
            dispatcher,
            sink,
            sandboxes,
            model_policy=settings.model_policy(),
            max_sandboxes_per_execution=settings.max_sandboxes_per_execution,
            process_sandboxes=process_sandboxes(),
            on_guard=metrics.guard_tripped,
            compaction=CompactionPolicy.with_default_window(
                settings.root_context_window_tokens, settings.compaction_threshold
            ),
            tools=tool_box(),
        )
        strategy = None
        try:
            request = in_transaction(lambda: _load_request(execution_id))
            strategy = request.options.strategy
            _ship_slices(dispatcher, execution_id, request.context)
            # The engine stops itself between steps; this also stops a cell that is busy computing.
            deadline = time.monotonic() + request.options.timeout_seconds + STOP_GRACE_SECONDS
            with StopWatch(status_probe(execution_id, heartbeat), deadline, sandboxes.stop_all):
                result = engine.run(request, is_cancelled=should_stop)
        except Exception as exc:  # the engine failing is a failed execution, never a lost one
            log.exception("execution %s crashed", execution_id)
            database.session.rollback()
            if not _finish(execution_id, attempt, status="failed", error=tenant_error(exc)):
                return None
            metrics.execution_finished("failed", strategy)
            return "failed"
    try:
        status = in_transaction(lambda: _store_result(execution_id, attempt, result))
    except Exception:  # never leave it `running` (and counted in the quota) past its time limit
        log.exception("execution %s: its outcome could not be stored", execution_id)
        if not _finish(execution_id, attempt, status="failed", error=OUTCOME_NOT_STORED):
            return None
        metrics.execution_finished("failed", strategy)
        return "failed"
    if status is not None:
        metrics.execution_finished(status, strategy)
        if result.guard_hit:
            metrics.guard_tripped(result.guard_hit)
    return status


def _ship_slices(dispatcher: Dispatcher, execution_id: str, context: Any) -> None:
    """Let a dispatcher that can send prompts quoting the stored context as references do so."""
    ship = getattr(dispatcher, "ship_slices_of", None)
    if ship is None or not isinstance(context, str):
        return
    context_id = database.session.scalar(sa.select(Execution.context_id).where(Execution.id == execution_id))
    database.session.rollback()
    if context_id is not None:
        ship(context_id, context)


def _store_result(execution_id: str, attempt: int, result: ExecutionResult) -> str | None:
    """Write the outcome if `attempt` still owns the execution (or it was cancelled meanwhile)."""
    execution = database.session.get(Execution, execution_id, with_for_update=True, populate_existing=True)
    assert execution is not None
    if execution.attempts != attempt or execution.status not in ("running", "cancelled"):
        log.warning(
            "execution %s: attempt %d was superseded (now attempt %d, %s); discarding its result",
            execution_id,
            attempt,
            execution.attempts,
            execution.status,
        )
        return None
    cancelled = execution.status == "cancelled"
    (final_answer, error, memory, variables), replaced = storable(
        (result.final_answer, result.error, result.memory, result.variables)
    )
    execution.status = "cancelled" if cancelled else result.status
    execution.final_answer = final_answer
    execution.answer_found = None if cancelled else result.answer_found
    execution.error = execution.error if cancelled else error
    execution.guard_hit = result.guard_hit
    execution.forced_final = result.forced_final
    execution.iterations = result.iterations
    # The totals everyone saw while it ran (its trace), stored: the record equals its trace.
    for name, value in trace_totals(database.session, execution_id).record_fields().items():
        setattr(execution, name, value)
    execution.finished_at = (execution.finished_at if cancelled else None) or utcnow()
    execution.lease_expires_at = None
    if cancelled and execution.error:
        # One reason everywhere: the root node says why it was cancelled, as the record does.
        database.session.execute(
            sa.update(TraceNode)
            .where(TraceNode.id == result.root_node_id)
            .values(status="cancelled", error=execution.error)
        )
    if execution.session_id:
        session = database.session.get(Session, execution.session_id)
        if session is not None:
            session.memory = memory
            session.variables = variables
    if replaced and result.root_node_id:
        where = "in the answer, the memory blocks or the session's variables"
        note_on_node(database.session.connection(), result.root_node_id, f"{NOTE.format(count=replaced)} {where}")
    return execution.status


def _finish(execution_id: str, attempt: int, status: str, error: str) -> bool:
    """Whether `attempt` still held the execution, so that this status was stored."""

    def update() -> int:
        return database.session.execute(
            sa.update(Execution)
            .where(holds_lease(execution_id, attempt))
            .values(status=status, error=error, finished_at=utcnow(), lease_expires_at=None)
        ).rowcount

    return in_transaction(update) > 0
