"""Trace-tree coordinates: sortable materialized paths and ids derived from them.

Ids are a function of (execution id, path), so a replayed or retried step writes the same
row again instead of a new one.
"""

from __future__ import annotations

import itertools
import threading
import uuid

from rlm_worker.engine.types import TraceNode

_NAMESPACE = uuid.UUID("6f1c1a4e-2f0b-4a4e-9d55-6b9a4d1f3c21")
SEGMENT_WIDTH = 6


def node_id_for(execution_id: str, path: str) -> str:
    return uuid.uuid5(_NAMESPACE, f"{execution_id}/{path}").hex


class TreeCursor:
    """Hands out child coordinates (seq, path, id) under one parent node, thread-safely."""

    def __init__(self, execution_id: str, parent: TraceNode | None) -> None:
        self.execution_id = execution_id
        self.parent = parent
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def next(self, count: int = 1) -> list[tuple[int, str, str]]:
        with self._lock:
            seqs = [next(self._seq) for _ in range(count)]
        prefix = f"{self.parent.path}." if self.parent else ""
        out = []
        for seq in seqs:
            path = f"{prefix}{seq:0{SEGMENT_WIDTH}d}"
            out.append((seq, path, node_id_for(self.execution_id, path)))
        return out

    def child(self, kind: str, depth: int, **fields: object) -> TraceNode:
        """A new node under the parent. `depth` is the agent's recursion depth, not the tree's."""
        seq, path, node_id = self.next()[0]
        return TraceNode(
            id=node_id,
            execution_id=self.execution_id,
            parent_id=self.parent.id if self.parent else None,
            kind=kind,
            path=path,
            depth=depth,
            seq=seq,
            **fields,  # type: ignore[arg-type]
        )
