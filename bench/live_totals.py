"""What live figures cost: an execution's totals summed from its trace (`rlm_shared.live_totals`).

Every reader of a running execution (the API record, each SSE poll, the dashboard header, CLI and
MCP progress) now runs one aggregate over the execution's trace nodes; nothing was added to the
sub-call path (the trace rows were already written). This measures that read on Postgres for a
4,096-call fan-out, beside the record read it joins, and the sum the runner stores when the run ends.

`python -m bench.live_totals [--calls 4096] [--repeats 200]`
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from rlm_api.serializers import NODE_SUMMARY_FIELDS
from rlm_shared.live_totals import trace_totals
from rlm_shared.models import Context, Execution, TraceNode
from tests.support.services import migrated_database


def _fill(engine: sa.Engine, calls: int) -> str:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        context_id = uuid.uuid4().hex
        conn.execute(
            sa.insert(Context.__table__),
            {"id": context_id, "sha256": context_id * 2, "size_chars": 1, "content": "x"},
        )
        execution_id = uuid.uuid4().hex
        conn.execute(
            sa.insert(Execution.__table__),
            {"id": execution_id, "context_id": context_id, "user_query": "q", "root_model": "m", "sub_model": "m",
             "options": {}, "status": "running", "created_at": now},
        )  # fmt: skip
        rows = [
            {"id": uuid.uuid4().hex, "execution_id": execution_id, "path": f"0.0.0.{i:05d}", "kind": "llm_call",
             "depth": 1, "seq": i, "status": "succeeded" if i % 3 else "running", "input_tokens": 1000,
             "output_tokens": 20, "cost_usd": 0.0001, "started_at": now, "prompt": "p" * 2000, "response": "r"}
            for i in range(calls)
        ]  # fmt: skip
        conn.execute(sa.insert(TraceNode.__table__), rows)
    return execution_id


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    with migrated_database("rlm_bench_live") as url:
        engine = sa.create_engine(url)
        execution_id = _fill(engine, args.calls)
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE trace_nodes"))
            record = _median_ms(
                lambda: conn.execute(sa.select(Execution).where(Execution.id == execution_id)).one(),
                args.repeats,
            )
            totals = _median_ms(lambda: trace_totals(conn, execution_id), args.repeats)
            # What each SSE poll already read before this change: every node's summary columns.
            columns = [getattr(TraceNode, name) for name in NODE_SUMMARY_FIELDS]
            nodes = _median_ms(
                lambda: conn.execute(
                    sa.select(*columns).where(TraceNode.execution_id == execution_id).order_by(TraceNode.path)
                ).all(),
                max(20, args.repeats // 10),
            )
            result = trace_totals(conn, execution_id)
        engine.dispose()
    print(
        f"{args.calls:,} sub-call nodes ({result.sub_calls_done:,} finished), {args.repeats} reads each, medians:"
    )
    print(f"  execution record read      {record:.2f} ms")
    print(
        f"  trace totals (aggregate)   {totals:.2f} ms  ({totals * 1000 / args.calls:.2f} µs per sub-call node)"
    )
    print(
        f"  SSE poll's node read       {nodes:.2f} ms  (already there before; the totals add {totals / nodes:.0%})"
    )


if __name__ == "__main__":
    main()
