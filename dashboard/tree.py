"""An execution's trace as the page shows it: a nested tree, subtree totals, a waterfall, a cost split.

Built in one pass over the rows of `queries.tree_rows` (already in display order by `path`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dashboard.queries import MODEL_CALL_KINDS, PROGRAM_LABEL_START
from rlm_api.passages import Place, PromptView, describe, passage_of, template_edges

#: Tree levels shown open on first load; deeper ones start collapsed (big trees stay light).
OPEN_LEVELS = 2
WATERFALL_MAX_ROWS = 400
WATERFALL_KINDS = ("iteration", "code", "llm_call", "child_rlm", "compaction", "tool")
#: Time one render may spend finding passages in the context; what it finds is cached, so the
#: next render of a big tree (a live page polls) names the rest.
LOCATE_BUDGET_SECONDS = 0.25
#: (passage start, its length) -> where it sits in the context, or None.
PlaceFinder = Callable[[str, int | None], Place | None]


@dataclass
class NodeView:
    """One tree row: what the node is, what it and everything below it cost."""

    id: str
    parent_id: str | None
    path: str
    kind: str
    model: str | None
    status: str
    depth: int
    level: int
    preview: str
    error: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    started_at: datetime | None
    finished_at: datetime | None
    children: list[NodeView] = field(default_factory=list)
    #: A sub-call sent to wait for a slot: when it was sent (`started_at`: when it ran, if it did).
    queued_at: datetime | None = None
    total_tokens: int = 0
    total_cost: float = 0.0
    failed_below: int = 0
    #: For a sub-call: which passage it read (`rlm_api.passages.describe`), when that can be told.
    passage: str | None = None
    prompt: PromptView | None = None

    @property
    def label(self) -> str:
        return self.passage or self.preview

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def is_model_call(self) -> bool:
        """A root model's turn or a sub-call; not the one step of a fixed root program."""
        return self.kind in MODEL_CALL_KINDS and not (self.model or "").startswith(PROGRAM_LABEL_START)

    @property
    def is_open(self) -> bool:
        return self.level < OPEN_LEVELS

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "timed_out") or (bool(self.error) and self.status != "cancelled")


@dataclass
class Tree:
    roots: list[NodeView]
    count: int
    by_kind: dict[str, int]
    nodes: list[NodeView]


def build_tree(rows: list[Any], place: PlaceFinder | None = None) -> Tree:
    """Nest the rows by parent id and add up tokens, cost and failures under each node; name the
    passage each sub-call read (`place` finds it in the context, within a time budget)."""
    by_id: dict[str, NodeView] = {}
    roots: list[NodeView] = []
    ordered: list[NodeView] = []
    by_kind: dict[str, int] = defaultdict(int)
    for row in rows:
        view = NodeView(
            id=row.id,
            parent_id=row.parent_id,
            path=row.path,
            kind=row.kind,
            model=row.model,
            status=row.status,
            depth=row.depth,
            level=row.path.count("."),
            preview=_first_line(row.preview),
            error=row.error,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            cost_usd=row.cost_usd,
            started_at=row.started_at,
            queued_at=getattr(row, "queued_at", None),
            finished_at=row.finished_at,
        )
        if getattr(row, "prompt_length", None) is not None:
            view.prompt = PromptView(row.prompt_head or "", row.prompt_tail or "", row.prompt_length)
        by_id[view.id] = view
        ordered.append(view)
        by_kind[view.kind] += 1
        parent = by_id.get(view.parent_id) if view.parent_id else None
        (parent.children if parent else roots).append(view)
    for view in reversed(ordered):  # children come after parents in path order
        if view.is_model_call:
            view.total_tokens += view.input_tokens + view.output_tokens
            view.total_cost += view.cost_usd
        parent = by_id.get(view.parent_id) if view.parent_id else None
        if parent is not None:
            parent.total_tokens += view.total_tokens
            parent.total_cost += view.total_cost
            parent.failed_below += view.failed_below + (1 if view.failed else 0)
    name_passages(ordered, place)
    return Tree(roots=roots, count=len(ordered), by_kind=dict(by_kind), nodes=ordered)


def name_passages(nodes: list[NodeView], place: PlaceFinder | None) -> None:
    """Label each sub-call with the passage it read: its batch (the calls of one parent) gives
    the shared template; a call alone in its parent is compared with every call of the tree."""
    calls = [n for n in nodes if n.prompt is not None]
    batches: dict[str | None, list[NodeView]] = defaultdict(list)
    for n in calls:
        batches[n.parent_id].append(n)
    everyone = dict(
        zip([id(n) for n in calls], template_edges([n.prompt for n in calls]) or [], strict=False)
    )  # type: ignore[misc]
    deadline = time.monotonic() + LOCATE_BUDGET_SECONDS
    for batch in batches.values():
        own = template_edges([n.prompt for n in batch])  # type: ignore[misc]
        for index, n in enumerate(batch, start=1):
            assert n.prompt is not None
            passage = passage_of(n.prompt, index, own[index - 1] if own else everyone.get(id(n)))
            if passage is None:
                continue
            found = None
            if place is not None and time.monotonic() < deadline:
                found = place(n.prompt.head[passage.start_in_prompt :], passage.length)
            n.passage = describe(passage, found)


def _first_line(text: str | None) -> str:
    if not text:
        return ""
    for line in text.splitlines():
        if line.strip() and not line.startswith("```"):
            return line.strip()
    return text.strip()


@dataclass
class WaterfallRow:
    """One bar: the wait for a slot (`wait_*`, drawn hatched) then the run (`left`, `width`).
    `state` says how it is drawn: queued, running, done, failed or cancelled."""

    node: NodeView
    left: float
    width: float
    offset_seconds: float
    state: str
    wait_left: float | None = None
    wait_width: float | None = None
    wait_seconds: float | None = None


@dataclass
class Waterfall:
    rows: list[WaterfallRow]
    span_seconds: float
    hidden: int
    peak_parallel: int
    ticks: list[tuple[float, float]]


def _state(n: NodeView) -> str:
    if n.status == "cancelled":
        return "cancelled"
    if n.finished_at is None:
        return "running" if n.started_at is not None else "queued"
    return "failed" if n.failed else "done"


def build_waterfall(tree: Tree, start: datetime | None, end: datetime | None) -> Waterfall:
    """Bars placed relative to the execution's start (percent of its span): the time a sub-call
    waited for a slot apart from the time it ran; only running time counts as in flight."""
    timed = [n for n in tree.nodes if n.kind in WATERFALL_KINDS and (n.queued_at or n.started_at)]
    if not timed:
        return Waterfall(rows=[], span_seconds=0.0, hidden=0, peak_parallel=0, ticks=[])
    begins = {n.id: n.queued_at or n.started_at for n in timed}
    origin = start or min(begins.values(), key=_ts)
    moments = [n.finished_at or n.started_at or begins[n.id] for n in timed]
    finish = max([*moments, end] if end else moments, key=_ts)
    span = max((finish - origin).total_seconds(), 0.001)  # type: ignore[operator]

    def pct(moment: datetime) -> float:
        return min(100.0, max(0.0, (moment - origin).total_seconds() / span * 100))

    timed.sort(key=lambda n: (_ts(begins[n.id]), n.path))
    rows = []
    for n in timed[:WATERFALL_MAX_ROWS]:
        begin = begins[n.id]
        row = WaterfallRow(
            node=n, left=0.0, width=0.0, offset_seconds=max(0.0, (begin - origin).total_seconds()), state=_state(n)
        )
        if n.queued_at is not None:  # the wait: from sent to started (or to its end, never run)
            until = n.started_at or n.finished_at
            row.wait_left = round(pct(n.queued_at), 3)
            row.wait_width = round(max(0.4, (pct(until) if until else 100.0) - row.wait_left), 3)
            row.wait_seconds = (until - n.queued_at).total_seconds() if until else None
        if n.started_at is not None:
            row.left = round(pct(n.started_at), 3)
            stop = pct(n.finished_at) if n.finished_at else 100.0
            row.width = round(max(0.4, min(100.0 - row.left, stop - row.left)), 3)
        rows.append(row)
    ticks = [(round(i * 25.0, 1), span * i / 4) for i in range(5)]
    return Waterfall(
        rows=rows,
        span_seconds=span,
        hidden=max(0, len(timed) - WATERFALL_MAX_ROWS),
        peak_parallel=_peak_parallel([n for n in timed if n.kind == "llm_call"], finish),
        ticks=ticks,
    )


def _ts(value: datetime | None) -> float:
    return value.timestamp() if value else float("-inf")


def _peak_parallel(nodes: list[NodeView], until: datetime) -> int:
    """Most sub-calls running at one instant (a sweep over start and finish events); a call
    that only waited for a slot never ran, and its wait is not counted."""
    events = []
    for n in nodes:
        if n.started_at:
            events += [(n.started_at.timestamp(), 1), ((n.finished_at or until).timestamp(), -1)]
    events.sort(key=lambda e: (e[0], e[1]))
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


@dataclass
class CostLine:
    key: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    #: Percent of the total cost; None when nothing cost anything (a share of $0 means nothing).
    share: float | None = None


def cost_breakdown(tree: Tree) -> tuple[list[CostLine], list[CostLine]]:
    """Model calls grouped by model and by agent depth, each with its share of the total cost."""
    by_model: dict[str, CostLine] = {}
    by_depth: dict[str, CostLine] = {}
    for n in tree.nodes:
        if not n.is_model_call:
            continue
        for table, key in ((by_model, n.model or "(unknown)"), (by_depth, f"depth {n.depth}")):
            line = table.setdefault(key, CostLine(key=key))
            line.calls += 1
            line.input_tokens += n.input_tokens
            line.output_tokens += n.output_tokens
            line.cost_usd += n.cost_usd
    out = []
    for table in (by_model, by_depth):
        lines = list(table.values())
        total = sum(line.cost_usd for line in lines)
        for line in lines:
            line.share = round(line.cost_usd / total * 100, 2) if total else None
        out.append(lines)
    out[0].sort(key=lambda line: (-line.cost_usd, line.key))
    out[1].sort(key=lambda line: int(line.key.split()[1]))
    return out[0], out[1]
