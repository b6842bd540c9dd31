"""Benchmark 1, fan-out: one execution, a long context in N chunks, one `llm_query_batched`.

Reported against the ideal `ceil(chunks / slots) × latency` (slots = llm processes × threads) for
1, 2 and 4 llm worker processes, and against the reference implementation (`rlms`) on the same
program and model server, its runs interleaved with ours in the same session.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass

from bench import programs
from bench.report import Section, Target, table
from bench.stack import ROOT, BenchStack
from bench.workload import Spread, make_context


@dataclass
class FanoutRun:
    wall: float  # submit → result stored (ours) / completion() (reference)
    fanout: float  # what the program saw llm_query_batched take
    peak: int  # the model server's peak concurrency


def run_ours(stack: BenchStack, context: str, chunks: int) -> FanoutRun:
    stack.reset_model()
    done = stack.run(programs.query("fanout", chunks), context)
    report = json.loads(done.execution["final_answer"])
    if report["count"] != chunks:
        raise RuntimeError(f"fan-out answered {report['count']} of {chunks} sub-calls")
    return FanoutRun(
        done.wall_seconds, report["seconds"] or float("nan"), stack.model_calls()["peak_concurrency"]
    )


def run_reference(stack: BenchStack, chars: int, chunks: int) -> FanoutRun:
    stack.reset_model()
    out = subprocess.run(
        [sys.executable, "-m", "bench.reference", "--base-url", f"{stack.model_url}/v1", "--chars", str(chars),
         "--chunks", str(chunks)],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    if report["count"] != chunks:
        raise RuntimeError(f"reference answered {report['count']} of {chunks} sub-calls")
    return FanoutRun(
        report["wall_seconds"], report["fanout_seconds"], stack.model_calls()["peak_concurrency"]
    )


def benchmark(
    stack: BenchStack,
    worker_counts: tuple[int, ...] = (1, 2, 4),
    runs: int = 5,
    chars: int = 10_000_000,
    chunks: int = 256,
    reference: bool = True,
    command: str = "python -m bench.run_all --only fanout",
) -> Section:
    context = make_context(chars)
    rows, targets, notes = [], [], []
    ours_at_max: list[FanoutRun] = []
    theirs: list[FanoutRun] = []
    for count in worker_counts:
        stack.set_llm_workers(count)
        slots = count * stack.llm_threads
        ideal = math.ceil(chunks / slots) * stack.latency
        run_ours(stack, context, chunks)  # warm-up: connections, imports; not counted
        ours: list[FanoutRun] = []
        last = count == max(worker_counts)
        for _ in range(runs):
            ours.append(run_ours(stack, context, chunks))
            if reference and last:
                theirs.append(run_reference(stack, chars, chunks))
        if last:
            ours_at_max = ours
        fan = Spread.of([r.fanout for r in ours])
        wall = Spread.of([r.wall for r in ours])
        rows.append(
            [f"{count} × {stack.llm_threads} threads", f"{ideal:.2f} s", fan.fmt(), f"{fan.median / ideal:.2f}×",
             wall.fmt(), str(max(r.peak for r in ours))]
        )  # fmt: skip
    if theirs:
        fan = Spread.of([r.fanout for r in theirs])
        wall = Spread.of([r.wall for r in theirs])
        rows.append(
            [
                "reference `rlms` (its defaults)",
                "–",
                fan.fmt(),
                "–",
                wall.fmt(),
                str(max(r.peak for r in theirs)),
            ]
        )
        ours_fan = Spread.of([r.fanout for r in ours_at_max])
        ours_wall = Spread.of([r.wall for r in ours_at_max])
        fan_ratio = fan.median / ours_fan.median
        wall_ratio = wall.median / ours_wall.median
        notes.append(
            f"Against the reference with {max(worker_counts)} llm processes: **{fan_ratio:.1f}× faster** on the "
            f"fan-out itself (what the program timed around `llm_query_batched`), **{wall_ratio:.1f}× faster** "
            "end to end (ours: `POST /api/execute` with the context → result stored; the reference: "
            "`RLM.completion()` in one process, no HTTP, no database, no trace)."
        )
        targets.append(
            Target(
                "fan-out vs reference (4 × 32)",
                f"{fan_ratio:.1f}× (end to end {wall_ratio:.1f}×)",
                "≥ 5×",
                fan_ratio >= 5,
            )
        )
    ideal_max = math.ceil(chunks / (max(worker_counts) * stack.llm_threads)) * stack.latency
    best = Spread.of([r.fanout for r in ours_at_max]) if ours_at_max else None
    if best:
        targets.append(
            Target("fan-out vs ideal (4 × 32)", f"{best.median / ideal_max:.2f}× ({best.median:.3f} s)", "≤ 1.5×",
                   best.median / ideal_max <= 1.5)
        )  # fmt: skip
    notes.append(
        f"{chunks} sub-calls over {chars:,} characters, {stack.latency * 1000:.0f} ms model latency, medians of "
        f"{runs} runs (min–max) after one warm-up run. *fan-out* is what the root program measured around its "
        "one `llm_query_batched` call (same program text for both engines); *end to end* is submit → answer. "
        "Peak = the most sub-calls the model server saw at once."
    )
    header = ["llm workers", "ideal", "fan-out", "vs ideal", "end to end", "peak"]
    return Section("1. Fan-out", command, table(header, rows), notes, targets)
