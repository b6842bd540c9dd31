"""Run every benchmark and write BENCHMARKS.md: `python -m bench.run_all [--quick] [--only NAME ...]`.

One stack (model server, Postgres, Redis, API, workers) serves all benchmarks that need one; the
reference implementation runs interleaved with ours inside the fan-out benchmark. `--quick` runs
tiny sizes (a check that the suite works, not figures to publish) and writes nothing unless
`--output` is given.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import chain, context_scale, fanout, overhead, report, sandbox_costs, throughput
from bench.report import Section, Target
from bench.stack import ROOT, BenchStack

NAMES = ("sandbox", "fanout", "overhead", "chain", "context", "throughput", "dashboard")


def dashboard_section(quick: bool) -> Section:
    """Benchmark 6 is its own module (`bench.bench_dashboard`); its table goes in as printed."""
    argv = [sys.executable, "-m", "bench.bench_dashboard"] + (
        ["--sizes", "20", "200", "--runs", "5"] if quick else []
    )
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True, timeout=900).stdout
    targets = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"[\d,]+", cells[0]) and int(cells[0].replace(",", "")) >= 2000:
            median = float(cells[2].replace(",", ""))
            targets.append(
                Target(f"dashboard, {cells[0]} nodes", f"{median:.0f} ms", "< 300 ms", median < 300)
            )
    return Section("6. Dashboard", " ".join(["python", *argv[1:]]), out.strip(), [], targets)


def wait_for_quiet(load: float, patience: float = 1800) -> None:
    """The machine is shared: start when others' work has calmed down (or after `patience` s)."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        current = float(Path("/proc/loadavg").read_text().split()[0])
        if current < load:
            return
        print(f"[bench] load {current:.2f} ≥ {load}; waiting", file=sys.stderr, flush=True)
        time.sleep(20)


def run(
    names: tuple[str, ...], quick: bool, runs: int, fanout_workers: tuple[int, ...] = ()
) -> tuple[str, list[Section]]:
    sections: list[Section] = []
    needs_stack = any(n in names for n in ("fanout", "overhead", "chain", "context", "throughput"))
    stack = BenchStack(llm_workers=1).start() if needs_stack else None
    cmd = "python -m bench.run_all" + (" --quick" if quick else "")
    try:
        preamble = report.machine(stack.database_url if stack else None)
        steps: dict[str, Callable[[], Section]] = {
            "sandbox": lambda: sandbox_costs.benchmark(runs=runs),
            "fanout": lambda: fanout.benchmark(
                stack, worker_counts=fanout_workers or ((1, 2) if quick else (1, 2, 4)), runs=runs,
                chars=200_000 if quick else 10_000_000, chunks=32 if quick else 256, command=f"{cmd} --only fanout",
            ),
            "overhead": lambda: overhead.benchmark(stack, calls=100 if quick else 2000, command=f"{cmd} --only overhead"),
            "chain": lambda: chain.benchmark(stack, steps=5 if quick else 50, runs=runs, command=f"{cmd} --only chain"),
            "context": lambda: context_scale.benchmark(
                stack, sizes=(100_000, 1_000_000) if quick else context_scale.SIZES, runs=runs,
                command=f"{cmd} --only context",
            ),
            "throughput": lambda: throughput.benchmark(
                stack, clients=5 if quick else 50, seconds=3 if quick else 30, runs=runs,
                command=f"{cmd} --only throughput",
            ),
            "dashboard": lambda: dashboard_section(quick),
        }  # fmt: skip
        for name in names:
            began = time.monotonic()
            print(f"[bench] {name} …", file=sys.stderr, flush=True)
            sections.append(steps[name]())
            print(f"[bench] {name} done in {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
    finally:
        if stack is not None:
            stack.stop()
    return preamble, sections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the suite, publish nothing")
    parser.add_argument("--only", nargs="*", choices=NAMES, help="run only these benchmarks")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 5; quick: 1)")
    parser.add_argument(
        "--fanout-workers",
        type=int,
        nargs="*",
        default=(),
        help="llm worker counts of the fan-out (default 1 2 4)",
    )
    parser.add_argument("--output", type=Path, default=None, help="default BENCHMARKS.md (not with --quick)")
    parser.add_argument(
        "--quiet-load",
        type=float,
        default=None,
        help="first wait (up to 30 min) for the 1-min load below this",
    )
    args = parser.parse_args()
    if args.quiet_load is not None:
        wait_for_quiet(args.quiet_load)
    load_before = Path("/proc/loadavg").read_text().split()[0]
    runs = args.runs or (1 if args.quick else 5)
    if not args.quick and runs < 5:
        parser.error("published figures need at least 5 runs")
    names = tuple(args.only) if args.only else NAMES
    preamble, sections = run(names, args.quick, runs, tuple(args.fanout_workers))
    load_after = Path("/proc/loadavg").read_text().split()[0]
    notes = (
        "\n\nEvery figure is measured on this machine, in one session, with everything as separate local "
        "processes: the scripted OpenAI-compatible model server (`bench/model_server.py`, fixed per-call "
        "latency, usage reported from the text sizes), Postgres, Redis, the API under gunicorn, one root "
        "worker and the llm workers; in benchmark 1 our runs, litellm alone and the reference ran interleaved. "
        "The machine is "
        f"shared with other work: the 1-minute load average was {load_before} when the run began and "
        f"{load_after} when it ended (2 cores). A load above 2 means the engine got less than the whole "
        "machine, and its figures are pessimistic."
    )
    for section in sections:
        print(section.markdown() + "\n")
    output = args.output or (None if args.quick else ROOT / "BENCHMARKS.md")
    if output is not None:
        report.write(output, preamble + notes, sections)
        print(f"wrote {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
