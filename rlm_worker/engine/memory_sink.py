"""A TraceSink that keeps the trace in memory: for using the engine as a library, and for tests."""

from __future__ import annotations

import copy
import threading
from typing import Any

from rlm_worker.engine.types import TraceNode


class InMemoryTraceSink:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.nodes: dict[str, TraceNode] = {}
        self.snapshots: list[tuple[str, str | None, dict[str, str]]] = []
        self.progress: dict[str, dict[str, Any]] = {}

    def node_started(self, node: TraceNode) -> None:
        with self._lock:
            self.nodes[node.id] = copy.copy(node)

    node_finished = node_started

    def nodes_recorded(self, nodes: list[TraceNode]) -> None:
        for node in nodes:
            self.node_started(node)

    def memory_snapshot(self, execution_id: str, node_id: str | None, blocks: dict[str, str]) -> None:
        with self._lock:
            self.snapshots.append((execution_id, node_id, dict(blocks)))

    def execution_progress(self, execution_id: str, fields: dict[str, Any]) -> None:
        with self._lock:
            self.progress.setdefault(execution_id, {}).update(fields)

    def tree(self) -> list[TraceNode]:
        """Every node in display order."""
        with self._lock:
            return sorted(self.nodes.values(), key=lambda n: n.path)
