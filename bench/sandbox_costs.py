"""The sandbox's own costs (issue 4): start-up, one cell round trip, one `llm_query` through the pipe.

Uses the production factory, `make_sandbox_factory(SandboxConfig())`, with a call handler that
answers at once, so the figures are the sandbox and its pipe alone. Start-up is measured twice,
interleaved in one run (issue 30): with every OS layer this host gives (`SANDBOX_ISOLATION=auto`:
bubblewrap's namespaces, another uid, seccomp) and with none (`off`, the sandbox as it was before
them). Run: `python -m bench.sandbox_costs`.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.report import Section, table
from bench.workload import Spread, make_context

CALLS_PER_CELL = 200


def _answer(fn: str, args: dict[str, Any]) -> Any:
    return "1" if fn == "llm_query" else None


def start_ups(runs: int = 7) -> dict[str, Spread]:
    """Start-up + first cell with the OS layers (`auto`) and without (`off`), alternating runs."""
    from rlm_worker.sandbox import SandboxConfig, make_sandbox_factory

    factories = {mode: make_sandbox_factory(SandboxConfig(isolation=mode)) for mode in ("auto", "off")}
    times: dict[str, list[float]] = {mode: [] for mode in factories}
    context = make_context(1_000)
    for factory in factories.values():  # probe the host and warm the page cache once
        factory(context, {}, {}).close()
    for _ in range(runs):
        for mode, factory in factories.items():
            began = time.perf_counter()
            sandbox = factory(context, {}, {"DEFAULT_CHUNK_SIZE": 50_000})
            result = sandbox.execute("x = 1", _answer)
            times[mode].append(time.perf_counter() - began)
            sandbox.close()
            if result.error:
                raise RuntimeError(f"the sandbox ({mode}) failed a trivial cell: {result.error}")
    return {mode: Spread.of(values) for mode, values in times.items()}


def measure(runs: int = 7, context_chars: int = 1_000) -> dict[str, Spread]:
    from rlm_worker.sandbox import SandboxConfig, make_sandbox_factory

    factory = make_sandbox_factory(SandboxConfig())
    context = make_context(context_chars)
    starts, cells, calls = [], [], []
    for _ in range(runs):
        began = time.perf_counter()
        sandbox = factory(context, {}, {"DEFAULT_CHUNK_SIZE": 50_000})
        result = sandbox.execute("x = 1", _answer)
        starts.append(time.perf_counter() - began)
        try:
            if result.error:
                raise RuntimeError(f"the sandbox failed a trivial cell: {result.error}")
            began = time.perf_counter()
            for _ in range(20):
                sandbox.execute("x = x + 1", _answer)
            cell = (time.perf_counter() - began) / 20
            cells.append(cell)
            began = time.perf_counter()
            result = sandbox.execute(f"for i in range({CALLS_PER_CELL}):\n    y = llm_query('ping')", _answer)
            if result.error:
                raise RuntimeError(f"llm_query failed in the sandbox: {result.error}")
            calls.append((time.perf_counter() - began - cell) / CALLS_PER_CELL)
        finally:
            sandbox.close()
    return {"start": Spread.of(starts), "cell": Spread.of(cells), "call": Spread.of(calls)}


def benchmark(runs: int = 7, command: str = "python -m bench.sandbox_costs") -> Section:
    from rlm_worker.sandbox.isolation import isolation_plan

    small = measure(runs)
    big = measure(max(5, runs // 2), context_chars=10_000_000)
    paired = max(runs, 21)
    layers = start_ups(paired)
    plan = isolation_plan("auto")
    rows = [
        ["start-up + first cell, OS layers off (`SANDBOX_ISOLATION=off`)", _ms(layers["off"])],
        ["start-up + first cell, OS layers on (`auto`)", _ms(layers["auto"])],
        ["start-up + first cell (1 k context)", _ms(small["start"])],
        ["start-up + first cell (10 M context)", _ms(big["start"])],
        ["one cell round trip", _ms(small["cell"])],
        ["one `llm_query` through the pipe", _ms(small["call"])],
    ]
    notes = [
        f"`make_sandbox_factory(SandboxConfig())`, medians of {runs} (min–max); the cell figure is the mean of "
        f"20 cells, the `llm_query` figure the mean of {CALLS_PER_CELL} calls in one cell (cell cost taken off), "
        f"answered at once by the handler. The two `SANDBOX_ISOLATION` rows alternate in one run ({paired} "
        "each); the other rows use the default (`auto`). Layers on here: "
        + ", ".join(layer.name for layer in plan.layers if layer.active)
        + "."
    ]
    return Section("Sandbox costs", command, table(["what", "time"], rows), notes)


def _ms(spread: Spread) -> str:
    return f"{spread.median * 1000:.2f} ms ({spread.low * 1000:.2f}–{spread.high * 1000:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(benchmark(max(5, args.runs)).markdown())


if __name__ == "__main__":
    main()
