"""The database: contexts, sessions, executions, trace nodes and memory snapshots.

Plain SQLAlchemy 2.0 declarative classes, so a worker, the migrations and any script use them
without Flask; the web side's Flask-SQLAlchemy wraps the same `Base` (`rlm_api.database`).
Schema changes go through the migrations (`flask --app rlm_api db migrate`), never `create_all`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """The models' base; its `metadata` is the schema the migrations compare against."""

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
TZDateTime = sa.DateTime(timezone=True)

EXECUTION_STATUSES = ("queued", "running", "succeeded", "failed", "timed_out", "cancelled")
FINISHED_STATUSES = ("succeeded", "failed", "timed_out", "cancelled")
NODE_KINDS = ("root", "iteration", "code", "llm_call", "child_rlm", "search", "compaction", "tool")
#: Node kinds whose own tokens and cost are one model call (a root's totals repeat its children's):
#: a root turn, a sub-call, and the summary call of a compaction.
MODEL_CALL_KINDS = ("iteration", "llm_call", "compaction")


def _uuid() -> str:
    return uuid.uuid4().hex


def _now() -> datetime:
    return datetime.now(UTC)


class Context(Base):
    """An input, stored once per owner and distinct content, so messages carry only its id.

    `sha256` is the dedupe key: the hash of the owner and the content (see `rlm_shared.contexts`)."""

    __tablename__ = "contexts"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=_uuid)
    sha256: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(sa.String(8), nullable=False, default="str")
    size_chars: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    content: Mapped[str] = mapped_column(sa.Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=_now, nullable=False)


class Session(Base):
    """A context plus memory and REPL variables that persist across executions."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=_uuid)
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    context_id: Mapped[str | None] = mapped_column(sa.ForeignKey("contexts.id"), nullable=True)
    memory: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    variables: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    owner: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=_now, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime, default=_now, onupdate=_now, nullable=False)


class Execution(Base):
    """One root run of the agent loop over a context."""

    __tablename__ = "executions"
    __table_args__ = (sa.Index("ix_executions_status_created", "status", "created_at"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=_uuid)
    session_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("sessions.id", ondelete="SET NULL"), nullable=True, index=True
    )
    context_id: Mapped[str] = mapped_column(sa.ForeignKey("contexts.id"), nullable=False)
    user_query: Mapped[str] = mapped_column(sa.Text, nullable=False)
    root_model: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    sub_model: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, default="queued")
    final_answer: Mapped[str | None] = mapped_column(sa.Text)
    #: False: succeeded, but the context does not answer (final answer "NONE"); None: no answer yet.
    answer_found: Mapped[bool | None] = mapped_column(sa.Boolean, nullable=True)
    error: Mapped[str | None] = mapped_column(sa.Text)
    guard_hit: Mapped[str | None] = mapped_column(sa.String(32))
    forced_final: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    #: Run on the offline plan: no provider was configured, so the local model read the chunks
    #: and a built-in strategy played the root (`rlm_api.planning`).
    offline: Mapped[bool] = mapped_column(
        sa.Boolean, nullable=False, default=False, server_default=sa.false()
    )
    iterations: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    total_input_tokens: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    total_output_tokens: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    total_cost_usd: Mapped[float] = mapped_column(sa.Float, nullable=False, default=0.0)
    llm_calls: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    sub_calls: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    owner: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, index=True)
    #: The calling agent, when the client named one (`x-agent-id`, as Letta sends over MCP).
    agent_id: Mapped[str | None] = mapped_column(sa.String(200), nullable=True, index=True)
    worker: Mapped[str | None] = mapped_column(sa.String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(TZDateTime, index=True)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")
    enqueued_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=_now, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(TZDateTime)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class TraceNode(Base):
    """One step of an execution tree. `path` sorts a whole tree in display order."""

    __tablename__ = "trace_nodes"
    __table_args__ = (sa.Index("ix_trace_nodes_execution_path", "execution_id", "path", unique=True),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    execution_id: Mapped[str] = mapped_column(
        sa.ForeignKey("executions.id", ondelete="CASCADE"), nullable=False
    )
    parent_id: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    depth: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    seq: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    path: Mapped[str] = mapped_column(sa.String(512), nullable=False)
    kind: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    model: Mapped[str | None] = mapped_column(sa.String(200))
    prompt: Mapped[str | None] = mapped_column(sa.Text)
    response: Mapped[str | None] = mapped_column(sa.Text)
    code: Mapped[str | None] = mapped_column(sa.Text)
    stdout: Mapped[str | None] = mapped_column(sa.Text)
    stderr: Mapped[str | None] = mapped_column(sa.Text)
    input_tokens: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    output_tokens: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    cost_usd: Mapped[float] = mapped_column(sa.Float, nullable=False, default=0.0)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, default="running")
    error: Mapped[str | None] = mapped_column(sa.Text)
    #: When a sub-call was sent to wait for a slot (status `queued`); `started_at` is when it ran.
    queued_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    started_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(TZDateTime)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class MemoryContent(Base):
    """A set of memory blocks, stored once by the sha256 of its canonical JSON: every child run
    writes a snapshot, and most repeat blocks already stored (issue 30: 40 children of one
    `rlm_query_batched` wrote 430 MB of copies). Snapshots refer to it by hash."""

    __tablename__ = "memory_contents"

    sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    blocks: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=_now, nullable=False)


class MemorySnapshot(Base):
    """The memory blocks after a step, so the dashboard can diff consecutive steps. The blocks
    are in `memory_contents` (`content_sha256`); rows written before revision 0006 hold their own
    copy in `blocks`."""

    __tablename__ = "memory_snapshots"
    __table_args__ = (sa.Index("ix_memory_snapshots_execution_seq", "execution_id", "seq"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(
        sa.ForeignKey("executions.id", ondelete="CASCADE"), nullable=False
    )
    node_id: Mapped[str | None] = mapped_column(sa.String(32))
    seq: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    blocks: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    content_sha256: Mapped[str | None] = mapped_column(
        sa.ForeignKey("memory_contents.sha256"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=_now, nullable=False)


EVAL_STATUSES = ("running", "succeeded", "failed")


class EvalRun(Base):
    """One `rlm eval` / `POST /api/evals`: a suite run for one or more configurations.

    `spec` is what was asked (tasks, sizes, seed, configurations), enough to generate the same
    items again; `report` the scored summary, written once every item's execution has finished."""

    __tablename__ = "eval_runs"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True, default=_uuid)
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, default="running")
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    error: Mapped[str | None] = mapped_column(sa.Text)
    owner: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=_now, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(TZDateTime)


class EvalItem(Base):
    """One task item run under one configuration (or as the base-model baseline): an ordinary
    execution, and its score once that execution has finished."""

    __tablename__ = "eval_items"
    __table_args__ = (sa.Index("ix_eval_items_run_seq", "eval_run_id", "seq"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    eval_run_id: Mapped[str] = mapped_column(
        sa.ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False
    )
    seq: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    config: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    baseline: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    task: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    item_id: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    size: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    scorer: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    answers: Mapped[list[Any]] = mapped_column(JSONType, nullable=False, default=list)
    execution_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("executions.id", ondelete="SET NULL"), nullable=True, index=True
    )
    score: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class ModelCallCache(Base):
    """The opt-in model call cache (`MODEL_CALL_CACHE`): a reply kept by a hash of the model and
    the messages, with what the first call cost, so a re-run answers from here and counts what
    it saved."""

    __tablename__ = "model_call_cache"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    model: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    text: Mapped[str] = mapped_column(sa.Text, nullable=False)
    input_tokens: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    output_tokens: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    cost_usd: Mapped[float] = mapped_column(sa.Float, nullable=False, default=0.0)
    hits: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    saved_usd: Mapped[float] = mapped_column(sa.Float, nullable=False, default=0.0)
    created_at: Mapped[datetime] = mapped_column(TZDateTime, default=_now, nullable=False)
