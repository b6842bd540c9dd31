"""Benchmark 4, context scale: 1 M, 10 M and 50 M characters.

Time from `POST /api/execute` (with the context in the body) to the first model call reaching the
model server, and the peak RSS of the API and of the root worker above their idle size. Each size
gets a fresh API and root worker (peak RSS is per process lifetime), and each run a different
context, so no run is spared the work by the sha256 deduplication.
"""

from __future__ import annotations

import time

from bench import programs
from bench.report import Section, Target, table
from bench.stack import BenchStack, memory_kb
from bench.workload import Spread, make_context

SIZES = (1_000_000, 10_000_000, 50_000_000)


def _peak_mb(pids: list[int]) -> float:
    return max((memory_kb(p, "VmHWM") for p in pids), default=0) / 1024


def _idle_mb(pids: list[int]) -> float:
    return max((memory_kb(p, "VmRSS") for p in pids), default=0) / 1024


def one_size(stack: BenchStack, chars: int, runs: int, fresh: bool = True) -> dict[str, float | Spread]:
    """`fresh`: restart the API and the root worker first, so their peak RSS belongs to this size."""
    if fresh:
        stack.start_api()
        stack.start_root_worker()
    stack.run(programs.query("small_batch", 1), make_context(10_000, salt="warm-up"))  # imports, pools
    api_idle, root_idle = _idle_mb(stack.pids("api")), _idle_mb(stack.pids("root")[:1])
    firsts = []
    for run in range(runs):
        context = make_context(chars, salt=f"{chars}-{run}-{time.time()}")
        stack.reset_model()
        execution_id, submitted, _ = stack.submit(programs.query("small_batch", 1), context)
        del context
        execution = stack.wait(execution_id)
        if execution["status"] != "succeeded":
            raise RuntimeError(f"{chars:,} characters: {execution['status']}: {execution['error']}")
        first = min(c["t"] for c in stack.model_calls()["calls"] if c["root"])
        firsts.append(first - submitted)
    return {
        "first_call": Spread.of(firsts),
        "api_growth": _peak_mb(stack.pids("api")) - api_idle,
        "root_growth": _peak_mb(stack.pids("root")[:1]) - root_idle,
        "api_idle": api_idle,
        "root_idle": root_idle,
    }


def benchmark(
    stack: BenchStack,
    sizes: tuple[int, ...] = SIZES,
    runs: int = 5,
    command: str = "python -m bench.run_all --only context",
    fresh: bool = True,
) -> Section:
    rows, targets = [], []
    for chars in sizes:
        r = one_size(stack, chars, runs, fresh)
        mb = chars / 1_000_000
        first: Spread = r["first_call"]  # type: ignore[assignment]
        rows.append(
            [f"{chars:,}", first.fmt(), f"{r['api_growth']:.1f} MB ({r['api_growth'] / mb:.1f}×)",
             f"{r['root_growth']:.1f} MB ({r['root_growth'] / mb:.1f}×)",
             f"{r['api_idle']:.0f} / {r['root_idle']:.0f} MB"]
        )  # fmt: skip
        if chars == 10_000_000:
            targets.append(Target("time to first call, 10 M", first.fmt(), "< 2 s", first.median < 2.0))
            growth = float(r["root_growth"])  # type: ignore[arg-type]
            targets.append(
                Target(
                    "root worker RSS growth, 10 M",
                    f"{growth:.1f} MB ({growth / mb:.1f}×)",
                    "< 4× context",
                    growth < 4 * mb,
                )
            )
    notes = [
        f"Medians of {runs} runs (min–max). Growth = peak RSS (VmHWM) of the process minus its idle RSS after a "
        "warm-up execution, as a multiple of the context size in MB (ASCII text: 1 character = 1 byte). The API "
        "column is its busiest gunicorn worker; the root worker column is the Celery process itself (the "
        "sandbox subprocess holding the context is separate)."
    ]
    header = [
        "characters",
        "submit → first model call",
        "API peak growth",
        "root worker peak growth",
        "idle API / root",
    ]
    return Section("4. Context scale", command, table(header, rows), notes, targets)
