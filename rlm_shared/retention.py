"""What the database keeps: `rlm db prune` (and RETENTION_DAYS) delete what is older than N days.

Every execution leaves its trace, its memory snapshots and its context behind; nothing else ever
deletes them, so a busy server's disk only grows (issue 30). A prune deletes, in one transaction:
- finished executions (never a queued or running one) that ended before the cut-off, with their
  trace nodes and memory snapshots;
- memory snapshots older than the cut-off of any other finished execution;
- contexts older than the cut-off that no execution and no session uses any more;
- stored memory blocks (`memory_contents`) older than the cut-off that no snapshot names.
Sessions are the user's own records and are kept (their context with them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rlm_shared.models import (
    FINISHED_STATUSES,
    Context,
    Execution,
    MemoryContent,
    MemorySnapshot,
    Session,
    TraceNode,
)


@dataclass(frozen=True)
class Pruned:
    """How many rows of each kind one prune deleted."""

    executions: int
    trace_nodes: int
    snapshots: int
    contexts: int
    memory_contents: int

    def summary(self) -> str:
        return (
            f"deleted {self.executions} executions, {self.trace_nodes} trace nodes, "
            f"{self.snapshots} memory snapshots, {self.contexts} contexts, "
            f"{self.memory_contents} stored memory blocks"
        )


def prune(engine: Engine, older_than_days: float, now: datetime | None = None) -> Pruned:
    """Delete what is older than `older_than_days` (see the module's docstring), in one transaction."""
    if older_than_days < 0:
        raise ValueError("older_than_days must be 0 or more")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    finished = Execution.status.in_(FINISHED_STATUSES)
    old = sa.select(Execution.id).where(
        finished, sa.func.coalesce(Execution.finished_at, Execution.created_at) < cutoff
    )
    with engine.begin() as conn:
        nodes = conn.execute(sa.delete(TraceNode).where(TraceNode.execution_id.in_(old))).rowcount
        snapshots = conn.execute(
            sa.delete(MemorySnapshot).where(
                MemorySnapshot.execution_id.in_(sa.select(Execution.id).where(finished)),
                sa.or_(MemorySnapshot.execution_id.in_(old), MemorySnapshot.created_at < cutoff),
            )
        ).rowcount
        executions = conn.execute(sa.delete(Execution).where(Execution.id.in_(old))).rowcount
        contexts = conn.execute(
            sa.delete(Context).where(
                Context.created_at < cutoff,
                ~Context.id.in_(sa.select(Execution.context_id)),
                ~Context.id.in_(sa.select(Session.context_id).where(Session.context_id.is_not(None))),
            )
        ).rowcount
        contents = conn.execute(
            sa.delete(MemoryContent).where(
                MemoryContent.created_at < cutoff,
                ~MemoryContent.sha256.in_(
                    sa.select(MemorySnapshot.content_sha256).where(MemorySnapshot.content_sha256.is_not(None))
                ),
            )
        ).rowcount
    return Pruned(executions, nodes, snapshots, contexts, contents)
