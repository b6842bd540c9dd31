"""The engine's TraceSink over SQLAlchemy: idempotent upserts of nodes, snapshots, progress.

Writes use short transactions on the engine (thread-safe), not the request-scoped session,
because agent threads and sub-call threads write concurrently.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine as SAEngine

from rlm_shared import tracing
from rlm_shared.models import Execution, MemoryContent, MemorySnapshot, TraceNode
from rlm_shared.storable import NOTE, storable
from rlm_worker.engine.types import TraceNode as EngineNode
from rlm_worker.engine.types import utcnow

_NODE_COLUMNS = [c.name for c in TraceNode.__table__.columns]
_UPDATABLE = [c for c in _NODE_COLUMNS if c not in ("id", "execution_id", "path", "parent_id", "seq", "kind")]
_TEXT_COLUMNS = ("model", "prompt", "response", "code", "stdout", "stderr", "error")


def storable_row(node: EngineNode) -> dict[str, Any]:
    """The node's row with text Postgres refuses (NUL, lone surrogates: what a model's code may
    print or answer) replaced by U+FFFD, and a note in its stderr saying how many were replaced."""
    row = {k: v for k, v in node.to_dict().items() if k in _NODE_COLUMNS}
    replaced = 0
    for column in _TEXT_COLUMNS:
        if row.get(column):
            row[column], count = storable(row[column])
            replaced += count
    if replaced:
        note = NOTE.format(count=replaced)
        row["stderr"] = f"{row['stderr']}\n{note}" if row.get("stderr") else note
    return row


def _insert(engine: SAEngine, table: sa.Table):
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


@lru_cache(maxsize=4)
def trace_engine(engine: SAEngine) -> SAEngine:
    """A sibling of `engine` for trace rows and the sub-call's status read: autocommit, so a
    write is one statement and one round trip (no BEGIN, no COMMIT, no rollback on return to
    the pool), and on Postgres commits that do not wait for the WAL flush. A database crash can
    lose the last fraction of a second of trace rows, never corrupt them, and a resumed
    execution then only pays those calls again. No pre-ping either: a connection broken by a
    database restart fails its statement, is discarded with every older one, and the caller's
    retry (`through_outage`) gets a fresh one. SQLite keeps the engine as it is."""
    if engine.dialect.name != "postgresql":
        return engine
    return sa.create_engine(
        engine.url,
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,
        connect_args={"options": "-c synchronous_commit=off"},
    )


@lru_cache(maxsize=4)
def _node_upsert(engine: SAEngine):
    """Built once per engine: building `set_` from `excluded` cost more CPU than the write itself."""
    stmt = _insert(engine, TraceNode.__table__)
    return stmt.on_conflict_do_update(
        index_elements=["id"], set_={c: getattr(stmt.excluded, c) for c in _UPDATABLE}
    )


def blocks_sha256(blocks: dict[str, str]) -> str:
    """The content address of a set of memory blocks: the sha256 of their canonical JSON."""
    canonical = json.dumps(blocks, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def note_on_node(conn: sa.Connection, node_id: str, note: str) -> None:
    """Append `note` to a stored node's stderr (where the trace shows what the run was told)."""
    stderr = sa.func.coalesce(TraceNode.__table__.c.stderr + "\n", "") + note
    conn.execute(sa.update(TraceNode.__table__).where(TraceNode.id == node_id).values(stderr=stderr))


class SqlTraceSink:
    def __init__(self, engine: SAEngine) -> None:
        self.engine = engine
        self.nodes_engine = trace_engine(engine)
        self._snapshot_seq: dict[str, itertools.count] = {}
        self._lock = threading.Lock()

    def _upsert_nodes(self, nodes: list[EngineNode]) -> None:
        if not nodes:
            return
        rows = [storable_row(n) for n in nodes]
        with self.nodes_engine.begin() as conn:
            conn.execute(_node_upsert(self.nodes_engine), rows)
        if tracing.node_spans is not None:  # OpenTelemetry on: finished nodes become spans
            tracing.node_spans.record(nodes)

    def node_started(self, node: EngineNode) -> None:
        self._upsert_nodes([node])

    def node_finished(self, node: EngineNode) -> None:
        self._upsert_nodes([node])

    def nodes_recorded(self, nodes: list[EngineNode]) -> None:
        self._upsert_nodes(nodes)

    def memory_snapshot(self, execution_id: str, node_id: str | None, blocks: dict[str, str]) -> None:
        blocks, replaced = storable(blocks)
        digest = blocks_sha256(blocks)
        with self.engine.begin() as conn:
            if replaced and node_id:
                note_on_node(conn, node_id, NOTE.format(count=replaced) + " in the memory blocks")
            seq = next(self._counter(conn, execution_id))
            # Stored once: a snapshot repeating blocks already stored only names them.
            conn.execute(
                _insert(self.engine, MemoryContent.__table__).on_conflict_do_nothing(index_elements=["sha256"]),
                {"sha256": digest, "blocks": blocks, "created_at": utcnow()},
            )
            conn.execute(
                sa.insert(MemorySnapshot.__table__),
                {"execution_id": execution_id, "node_id": node_id, "seq": seq, "content_sha256": digest},
            )

    def execution_progress(self, execution_id: str, fields: dict[str, Any]) -> None:
        fields, _ = storable(fields)
        with self.engine.begin() as conn:
            conn.execute(sa.update(Execution.__table__).where(Execution.id == execution_id).values(**fields))

    def _counter(self, conn: sa.Connection, execution_id: str) -> itertools.count:
        with self._lock:
            if execution_id not in self._snapshot_seq:
                start = conn.scalar(
                    sa.select(sa.func.coalesce(sa.func.max(MemorySnapshot.seq) + 1, 0)).where(
                        MemorySnapshot.execution_id == execution_id
                    )
                )
                self._snapshot_seq[execution_id] = itertools.count(int(start or 0))
            return self._snapshot_seq[execution_id]
