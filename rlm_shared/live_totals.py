"""An execution's totals (model calls, sub-calls, tokens, cost), computed from its trace.

The one source of every figure a person sees while a run goes on: the API record, the SSE
`status` events, the dashboard header, CLI and MCP progress all read `totals_for`. While an
execution runs its totals are summed over its trace nodes (one indexed aggregate query, no write
on the sub-call path); when it finishes the runner stores the same sums on the row
(`trace_totals` inside its final transaction), so a finished record equals its trace too.

Counted the way the engine's budget counts them:
- model calls: root/child iterations and compaction summaries the model answered, and sub-calls that returned (succeeded or
  failed), never those cancelled before the model answered;
- sub-calls: every `llm_call` and `child_rlm` node (queued, running, finished or cancelled);
- tokens and cost: summed over the model-call nodes (`iteration`, `llm_call`, `compaction`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from rlm_shared.models import FINISHED_STATUSES, MODEL_CALL_KINDS, Execution, TraceNode

#: The execution-record fields these totals fill.
TOTAL_FIELDS = ("llm_calls", "sub_calls", "total_input_tokens", "total_output_tokens", "total_cost_usd")
SUB_CALL_KINDS = ("llm_call", "child_rlm")
#: A sub-call node in one of these states has not returned yet.
UNFINISHED_NODE_STATUSES = ("queued", "running")


@dataclass(frozen=True)
class RunTotals:
    llm_calls: int = 0
    sub_calls: int = 0
    total_input_tokens: int = 0
    total_output_tokens: int = 0
    total_cost_usd: float = 0.0
    #: Sub-calls that returned (succeeded or failed), and those stopped before they returned.
    sub_calls_done: int = 0
    sub_calls_cancelled: int = 0

    def record_fields(self) -> dict[str, Any]:
        """The fields as the execution record names them."""
        return {name: getattr(self, name) for name in TOTAL_FIELDS}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def answered_model_call() -> Any:
    """A trace node that is one model call the model answered (the stats page counts these too)."""
    n = TraceNode
    answered_turn = sa.and_(n.kind.in_(("iteration", "compaction")), n.response.is_not(None))
    returned_call = sa.and_(n.kind == "llm_call", n.status.in_(("succeeded", "failed")))
    return sa.or_(answered_turn, returned_call)


def cancelled_sub_call() -> Any:
    """A sub-call stopped before the model answered it (a cancel, a time limit): no model call."""
    return sa.and_(TraceNode.kind == "llm_call", TraceNode.status == "cancelled")


def _aggregates() -> list[Any]:
    n = TraceNode
    is_sub = n.kind.in_(SUB_CALL_KINDS)
    is_model = n.kind.in_(MODEL_CALL_KINDS)
    return [
        sa.func.count().filter(answered_model_call()),
        sa.func.count().filter(is_sub),
        sa.func.coalesce(sa.func.sum(n.input_tokens).filter(is_model), 0),
        sa.func.coalesce(sa.func.sum(n.output_tokens).filter(is_model), 0),
        sa.func.coalesce(sa.func.sum(n.cost_usd).filter(is_model), 0.0),
        sa.func.count().filter(is_sub, n.status.notin_((*UNFINISHED_NODE_STATUSES, "cancelled"))),
        sa.func.count().filter(is_sub, n.status == "cancelled"),
    ]


def _totals(row: Iterable[Any]) -> RunTotals:
    calls, subs, tin, tout, cost, done, cancelled = row
    return RunTotals(
        llm_calls=int(calls or 0),
        sub_calls=int(subs or 0),
        total_input_tokens=int(tin or 0),
        total_output_tokens=int(tout or 0),
        total_cost_usd=float(cost or 0.0),
        sub_calls_done=int(done or 0),
        sub_calls_cancelled=int(cancelled or 0),
    )


def trace_totals(conn: Any, execution_id: str) -> RunTotals:
    """The totals of one execution's trace as it stands (`conn`: a Connection or Session)."""
    row = conn.execute(sa.select(*_aggregates()).where(TraceNode.execution_id == execution_id)).one()
    return _totals(row)


def trace_totals_many(conn: Any, execution_ids: Iterable[str]) -> dict[str, RunTotals]:
    """`trace_totals` of several executions in one grouped query (a list page's running rows)."""
    ids = list(dict.fromkeys(execution_ids))
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(TraceNode.execution_id, *_aggregates())
        .where(TraceNode.execution_id.in_(ids))
        .group_by(TraceNode.execution_id)
    ).all()
    found = {row[0]: _totals(row[1:]) for row in rows}
    return {i: found.get(i, RunTotals()) for i in ids}


def stored_totals(record: Execution | Mapping[str, Any]) -> RunTotals:
    """The totals a finished execution's row holds (written from its trace when it finished)."""
    get = record.get if isinstance(record, Mapping) else lambda name: getattr(record, name)
    return RunTotals(**{name: get(name) or 0 for name in TOTAL_FIELDS})


def totals_for(conn: Any, execution_id: str, status: str, record: Execution | Mapping[str, Any]) -> RunTotals:
    """What to show for an execution now: its trace while it runs, its stored totals once finished."""
    if status in FINISHED_STATUSES:
        return stored_totals(record)
    return trace_totals(conn, execution_id)
