"""How memory changed during an execution: each snapshot diffed against the previous one of its agent.

Recursive children keep their own memory and snapshot it into the same execution, so consecutive
snapshots by `seq` may belong to different agents; each is compared with its own agent's last one.
A snapshot taken at a `child_rlm` node belongs to the parent (its memory after the child merged back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboard import queries
from dashboard.diff import BlockDiff, diff_blocks


@dataclass
class MemoryChange:
    seq: int
    node_id: str | None
    node_kind: str | None
    agent_path: str
    first: bool
    diffs: list[BlockDiff]


def _agent_of(path: str | None, kind: str | None, agents: set[str]) -> str:
    """The path of the agent whose memory a snapshot taken at this node shows."""
    if path is None:
        return ""
    if kind == "root":
        return path
    while "." in path:
        path = path.rsplit(".", 1)[0]
        if path in agents:
            return path
    return path


def _pairs(execution_id: str) -> list[tuple[Any, int | None]]:
    """(snapshot, id of the previous snapshot of the same agent or None), oldest first."""
    agents = queries.agent_paths(execution_id)
    last: dict[str, int] = {}
    out = []
    for snap in queries.snapshot_index(execution_id):
        agent = _agent_of(snap.path, snap.kind, agents)
        out.append((snap, last.get(agent), agent))
        last[agent] = snap.id
    return out


def execution_changes(execution_id: str) -> list[MemoryChange]:
    """Every snapshot that changed something, in order."""
    pairs = _pairs(execution_id)
    ids = {snap.id for snap, _, _ in pairs} | {prev for _, prev, _ in pairs if prev is not None}
    blocks = queries.snapshot_blocks(sorted(ids))
    changes = []
    for snap, prev, agent in pairs:
        diffs = diff_blocks(blocks.get(prev) if prev is not None else {}, blocks.get(snap.id))
        if diffs:
            changes.append(_change(snap, agent, prev is None, diffs))
    return changes


def node_change(execution_id: str, node_ids: list[str]) -> MemoryChange | None:
    """The memory change recorded at the first of `node_ids` that has a snapshot, if any."""
    pairs = _pairs(execution_id)
    for node_id in node_ids:
        for snap, prev, agent in pairs:
            if snap.node_id == node_id:
                blocks = queries.snapshot_blocks([i for i in (snap.id, prev) if i is not None])
                diffs = diff_blocks(blocks.get(prev) if prev is not None else {}, blocks.get(snap.id))
                return _change(snap, agent, prev is None, diffs)
    return None


def _change(snap: Any, agent: str, first: bool, diffs: list[BlockDiff]) -> MemoryChange:
    return MemoryChange(
        seq=snap.seq, node_id=snap.node_id, node_kind=snap.kind, agent_path=agent, first=first, diffs=diffs
    )
