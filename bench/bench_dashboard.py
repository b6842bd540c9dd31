"""How long the server takes to render an execution page with a big trace.

Builds synthetic-but-realistic executions (iterations, code cells, batched `llm_query` fan-outs,
recursive children with their own loops, a few failures, memory growing step by step), writes them
into a private Postgres database through the real models and the real trace sink, then times the
execution page through the Flask test client. Run: `python -m bench.bench_dashboard`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from flask import Flask

from rlm_api.database import db
from rlm_shared.contexts import store_context
from rlm_shared.models import Execution
from rlm_shared.trace_sink import SqlTraceSink
from rlm_worker.engine.tree import TreeCursor
from rlm_worker.engine.types import TraceNode

ROOT_MODEL = "openai/gpt-4o"
SUB_MODEL = "openai/gpt-4o-mini"
SIZES = (200, 2000)

_CODE = """\
chunks = [context[i:i + {size}] for i in range({start}, len(context), {size})]
print(len(chunks), "chunks")
answers = llm_query_batched([
    "List every date mentioned in this part of the filing:\\n" + c for c in chunks[:{batch}]
])
dates = sorted({{d for a in answers for d in re.findall(r"\\d{{4}}-\\d{{2}}-\\d{{2}}", a)}})
memory.append("learnings", f"step {step}: {{len(dates)}} dates so far")
print(dates[:20])
"""


class _Clock:
    """Hands out realistic start/finish times: sequential steps, overlapping sub-calls."""

    def __init__(self, start: datetime, rng: random.Random) -> None:
        self.now = start
        self.rng = rng

    def step(self, seconds: float) -> tuple[datetime, datetime]:
        began = self.now
        self.now += timedelta(seconds=seconds)
        return began, self.now


def _text(rng: random.Random, words: int) -> str:
    vocab = ["revenue", "2023-04-01", "segment", "filing", "<b>risk</b>", "note", "table", "fiscal", "Q3"]
    return " ".join(rng.choice(vocab) for _ in range(words))


def _fan_out(
    cursor: TreeCursor, depth: int, count: int, clock: _Clock, rng: random.Random, out: list[TraceNode]
) -> None:
    """`count` sub-calls that start together (16 at a time) and finish at different times."""
    base = clock.now
    longest = 0.0
    for seq, path, node_id in cursor.next(count):
        wave, spread = divmod(seq, 16)
        began = base + timedelta(seconds=wave * 0.9 + spread * 0.004)
        took = rng.uniform(0.2, 0.9)
        failed = rng.random() < 0.02
        out.append(
            TraceNode(
                execution_id=cursor.execution_id,
                kind="llm_call",
                path=path,
                depth=depth + 1,
                seq=seq,
                parent_id=cursor.parent.id if cursor.parent else None,
                id=node_id,
                model=SUB_MODEL,
                prompt="List every date mentioned in this part of the filing:\n" + _text(rng, 700),
                response=None if failed else _text(rng, 40),
                input_tokens=0 if failed else rng.randint(900, 1300),
                output_tokens=0 if failed else rng.randint(20, 90),
                cost_usd=0.0 if failed else rng.uniform(1.5e-4, 2.5e-4),
                status="failed" if failed else "succeeded",
                error="RateLimitError: 429 Too Many Requests (retries exhausted)" if failed else None,
                started_at=began,
                finished_at=began + timedelta(seconds=took),
            )
        )
        longest = max(longest, (began - base).total_seconds() + took)
    clock.now = base + timedelta(seconds=longest)


def _agent(
    owner: TraceNode,
    depth: int,
    budget: int,
    clock: _Clock,
    rng: random.Random,
    out: list[TraceNode],
    memory: list[tuple[str, dict[str, str]]],
) -> None:
    """One agent loop under `owner`: iterations, each with a code cell that fans out sub-calls."""
    cursor = TreeCursor(owner.execution_id, owner)
    learnings: list[str] = []
    step = 0
    while budget > 0:
        step += 1
        began, finished = clock.step(rng.uniform(0.8, 2.5))
        iteration = cursor.child(
            "iteration",
            depth,
            model=ROOT_MODEL if depth == 0 else SUB_MODEL,
            prompt=f"Output of code cell 1:\n{_text(rng, 60)}",
            response=f"Let me look at the next chunks.\n```repl\n{_CODE}```",
            input_tokens=rng.randint(3000, 9000),
            output_tokens=rng.randint(150, 400),
            cost_usd=rng.uniform(0.004, 0.012),
            status="succeeded",
            started_at=began,
            finished_at=finished,
        )
        out.append(iteration)
        cells = TreeCursor(owner.execution_id, iteration)
        code_start = clock.now
        code = cells.child(
            "code",
            depth,
            code=_CODE.format(size=50_000, start=step * 50_000, batch=16, step=step),
            stdout=f"{rng.randint(10, 200)} chunks\n['2023-04-01', '2023-06-30']\n",
            stderr="",
            status="succeeded",
            started_at=code_start,
        )
        out.append(code)
        calls = TreeCursor(owner.execution_id, code)
        fan = min(max(budget - 3, 1), rng.choice((8, 16, 32)))
        _fan_out(calls, depth, fan, clock, rng, out)
        budget -= 2 + fan
        if depth == 0 and step % 4 == 0 and budget > 12:
            child = calls.child(
                "child_rlm",
                depth + 1,
                model=SUB_MODEL,
                prompt="Check the dates in the notes section against the tables.",
                status="succeeded",
                started_at=clock.now,
            )
            out.append(child)
            _agent(child, depth + 1, 10, clock, rng, out, memory)
            child.finished_at, child.response = clock.now, "2 of 3 dates confirmed"
            budget -= 11
        code.finished_at = clock.now
        learnings.append(
            f"step {step}: found {rng.randint(1, 40)} dates in chunks {step * 16}..{step * 16 + 15}"
        )
        memory.append(
            (iteration.id, {"learnings": "\n".join(learnings), "plan": f"next: chunk {step * 16 + 16}"})
        )


def insert_synthetic_execution(app: Flask, nodes: int, seed: int = 0) -> str:
    """Write one finished execution with about `nodes` trace nodes; returns its id."""
    rng = random.Random(seed)
    with app.app_context():
        context = store_context(_text(rng, 2000) + f" seed={seed} nodes={nodes}")
        start = datetime.now(UTC) - timedelta(minutes=5)
        execution = Execution(
            context_id=context.id,
            user_query="List every date mentioned in the filing and what happened on it.",
            root_model=ROOT_MODEL,
            sub_model=SUB_MODEL,
            options={"max_iterations": 30},
            status="succeeded",
            final_answer="2023-04-01: fiscal year start; 2023-06-30: Q2 close",
            started_at=start,
            created_at=start,
        )
        db.session.add(execution)
        db.session.commit()
        clock = _Clock(start, rng)
        root = TreeCursor(execution.id, None).child(
            "root", 0, model=ROOT_MODEL, prompt=execution.user_query, started_at=start, status="succeeded"
        )
        out: list[TraceNode] = [root]
        memory: list[tuple[str, dict[str, str]]] = [(root.id, {"learnings": ""})]
        _agent(root, 0, nodes - 1, clock, rng, out, memory)
        root.finished_at, root.response = clock.now, execution.final_answer
        sink = SqlTraceSink(db.engine)
        for i in range(0, len(out), 500):
            sink.nodes_recorded(out[i : i + 500])
        for node_id, blocks in memory:
            sink.memory_snapshot(execution.id, node_id, blocks)
        calls = [n for n in out if n.kind in ("iteration", "llm_call")]
        sink.execution_progress(
            execution.id,
            {
                "iterations": sum(1 for n in out if n.kind == "iteration" and n.depth == 0),
                "total_input_tokens": sum(n.input_tokens for n in calls),
                "total_output_tokens": sum(n.output_tokens for n in calls),
                "total_cost_usd": sum(n.cost_usd for n in calls),
                "llm_calls": len(calls),
                "sub_calls": sum(1 for n in out if n.kind in ("llm_call", "child_rlm")),
                "finished_at": clock.now,
            },
        )
        return execution.id


def time_page(app: Flask, execution_id: str, runs: int) -> tuple[list[float], int]:
    """Server render times in seconds (test client: no network), and the page size in bytes."""
    client = app.test_client()
    client.get(f"/executions/{execution_id}")  # warm the template cache
    times = []
    size = 0
    for _ in range(runs):
        began = time.perf_counter()
        response = client.get(f"/executions/{execution_id}")
        times.append(time.perf_counter() - began)
        assert response.status_code == 200, response.status_code
        size = len(response.data)
    return times, size


def node_count(app: Flask, execution_id: str) -> int:
    from dashboard.queries import tree_rows

    with app.app_context():
        return len(tree_rows(execution_id))


def markdown_table(results: list[tuple[int, list[float], int]]) -> str:
    lines = [
        "| nodes | runs | median ms | min ms | max ms | page size |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for count, times, size in results:
        ms = [t * 1000 for t in times]
        lines.append(
            f"| {count:,} | {len(ms)} | {statistics.median(ms):.1f} | {min(ms):.1f} | {max(ms):.1f} "
            f"| {size / 1024:.0f} kB |"
        )
    return "\n".join(lines)


def run(
    database_url: str, sizes: tuple[int, ...] = SIZES, runs: int = 7
) -> list[tuple[int, list[float], int]]:
    from rlm_api import create_app
    from rlm_shared.config import Settings

    app = create_app(settings=Settings(database_url=database_url, dispatch="celery"))
    results = []
    for size in sizes:
        execution_id = insert_synthetic_execution(app, size, seed=size)
        times, page_bytes = time_page(app, execution_id, runs)
        results.append((node_count(app, execution_id), times, page_bytes))
    return results


def main() -> None:
    from tests.support.services import create_database, upgrade_database

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="timed renders per size (at least 5)")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    args = parser.parse_args()
    url, drop = create_database("rlm_bench")
    try:
        upgrade_database(url)
        print(markdown_table(run(url, tuple(args.sizes), max(5, args.runs))))
    finally:
        drop()


if __name__ == "__main__":
    main()
