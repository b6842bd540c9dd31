"""The sandbox's own costs (issue 4): start-up, one cell round trip, one `llm_query` through the pipe.

Uses the production factory, `make_sandbox_factory(SandboxConfig())`, with a call handler that
answers at once, so the figures are the sandbox and its pipe alone. Run:
`python -m bench.sandbox_costs`.
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
    small = measure(runs)
    big = measure(max(5, runs // 2), context_chars=10_000_000)
    rows = [
        ["start-up + first cell (1 k context)", _ms(small["start"])],
        ["start-up + first cell (10 M context)", _ms(big["start"])],
        ["one cell round trip", _ms(small["cell"])],
        ["one `llm_query` through the pipe", _ms(small["call"])],
    ]
    notes = [
        f"`make_sandbox_factory(SandboxConfig())`, medians of {runs} (min–max); the cell figure is the mean of "
        f"20 cells, the `llm_query` figure the mean of {CALLS_PER_CELL} calls in one cell (cell cost taken off), "
        "answered at once by the handler."
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
