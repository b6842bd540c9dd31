"""Benchmark 3, sequential chain: N dependent `llm_query` calls (each needs the last answer).

The ideal is N × latency; what is left over is the engine's round trip per call, paid N times.
"""

from __future__ import annotations

import json

from bench import programs
from bench.report import Section, Target, table
from bench.stack import BenchStack
from bench.workload import Spread


def benchmark(
    stack: BenchStack, steps: int = 50, runs: int = 5, command: str = "python -m bench.run_all --only chain"
) -> Section:
    ideal = steps * stack.latency
    inside, walls = [], []
    stack.run(programs.query("chain", 2), "warm-up")
    for _ in range(runs):
        done = stack.run(programs.query("chain", steps), "a short context")
        report = json.loads(done.execution["final_answer"])
        if report["count"] != steps:
            raise RuntimeError(f"the chain ended at {report['count']}, not {steps}")
        if report["seconds"] is not None:
            inside.append(report["seconds"])
        walls.append(done.wall_seconds)
    wall = Spread.of(walls)
    chain = Spread.of(inside) if inside else wall
    per_call = (chain.median - ideal) / steps * 1000
    rows = [
        [f"{steps} × {stack.latency * 1000:.0f} ms", f"{ideal:.2f} s", chain.fmt(), f"{chain.median / ideal:.3f}×",
         f"{per_call:.1f} ms", wall.fmt()]
    ]  # fmt: skip
    notes = [
        f"Medians of {runs} runs (min–max). *chain* is what the program timed around its loop; *end to end* adds "
        "the root model call (one more latency), the API and the queue. Each step's answer is the previous plus "
        "one, so the result proves the calls ran in order."
    ]
    target = Target(
        "chain vs N × latency", f"{chain.median / ideal:.3f}×", "≤ 1.1×", chain.median / ideal <= 1.1
    )
    header = ["calls", "ideal", "chain", "vs ideal", "engine per call", "end to end"]
    return Section("3. Sequential chain", command, table(header, rows), notes, [target])
