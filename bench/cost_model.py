"""Cost as the work grows: fits `bench.data_path`'s points and sizes a fleet from the fits.

`python -m bench.cost_model bench/results/data_path.jsonl [--plot docs/data_path_cost.png]
[--rate 60 --chars 10000000 --calls 256]` prints a Markdown table of end-to-end time, engine CPU
and the largest process's memory growth against input size (at a fixed sub-call count) and
against sub-call count (at a fixed size), each with a linear fit (intercept + slope, R²) and the
log-log slope (1 = linear, < 1 sub-linear, > 1 super-linear), then what a fleet needs for `rate`
executions a minute of the given shape. The last point measured for a shape wins. The plot needs
matplotlib (`pip install matplotlib`; not a dependency of the product).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

METRICS = {
    "end to end (s)": lambda r: r["end_to_end_s"],
    "engine CPU (s)": lambda r: sum(v for k, v in r["cpu_s"].items() if "model" not in k),
    "largest RSS growth (MB)": lambda r: max(r["rss_growth_mb"].values()),
}


@dataclass
class Fit:
    intercept: float
    slope: float
    r2: float
    loglog: float

    @classmethod
    def of(cls, xs: list[float], ys: list[float]) -> Fit:
        x, y = np.array(xs, float), np.array(ys, float)
        slope, intercept = np.polyfit(x, y, 1)
        predicted = intercept + slope * x
        total = float(((y - y.mean()) ** 2).sum())
        r2 = 1 - float(((y - predicted) ** 2).sum()) / total if total else 1.0
        positive = (x > 0) & (y > 0)
        loglog = (
            float(np.polyfit(np.log(x[positive]), np.log(y[positive]), 1)[0])
            if positive.sum() >= 2
            else math.nan
        )
        return cls(float(intercept), float(slope), r2, loglog)

    def at(self, x: float) -> float:
        return self.intercept + self.slope * x


def load(path: Path) -> dict[tuple[int, int], dict[str, Any]]:
    points: dict[tuple[int, int], dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            points[(r["chars"], r["calls"])] = r
    return points


def series(points: dict[tuple[int, int], dict[str, Any]], by: str) -> dict[int, list[dict[str, Any]]]:
    """by="chars": for each sub-call count, its points in order of size; by="calls": the converse."""
    out: dict[int, list[dict[str, Any]]] = {}
    for (chars, calls), r in sorted(points.items()):
        key = calls if by == "chars" else chars
        out.setdefault(key, []).append(r)
    return {k: sorted(v, key=lambda r: r[by]) for k, v in out.items() if len(v) >= 2}


def table(points: dict[tuple[int, int], dict[str, Any]]) -> str:
    rows = ["| input | sub-calls | end to end | ideal | engine CPU | CPU / sub-call | largest RSS growth | Redis in / sub-call | trace / sub-call |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for (chars, calls), r in sorted(points.items()):
        cpu = METRICS["engine CPU (s)"](r)
        made = r["calls_made"]
        rows.append(
            f"| {chars / 1e6:g} M | {calls:,} | {r['end_to_end_s']:.2f} s ({r['end_to_end_s'] / r['ideal_s']:.2f}×) "
            f"| {r['ideal_s']:.2f} s | {cpu:.2f} s | {cpu / made * 1000:.2f} ms "
            f"| {METRICS['largest RSS growth (MB)'](r):.0f} MB | {r['redis_in_bytes'] / made / r['prompt_chars']:.2f}× prompt "
            f"| {r['pg_trace_bytes'] / made / r['prompt_chars']:.2f}× prompt |"
        )
    return "\n".join(rows)


def fits(points: dict[tuple[int, int], dict[str, Any]]) -> tuple[str, dict[str, dict[int, Fit]]]:
    rows = [
        "| metric | against | held fixed | fit (intercept + slope × x) | R² | log-log slope |",
        "|---|---|---|---|---|---|",
    ]
    found: dict[str, dict[int, Fit]] = {}
    for by, unit, scale in (("chars", "M characters", 1e6), ("calls", "sub-calls", 1.0)):
        for fixed, rs in series(points, by).items():
            xs = [r[by] / scale for r in rs]
            for name, metric in METRICS.items():
                fit = Fit.of(xs, [metric(r) for r in rs])
                found.setdefault(f"{name} by {by}", {})[fixed] = fit
                held = f"{fixed:,} sub-calls" if by == "chars" else f"{fixed / 1e6:g} M characters"
                rows.append(
                    f"| {name} | {unit} | {held} | {fit.intercept:.3g} + {fit.slope:.3g} × x | {fit.r2:.2f} | {fit.loglog:.2f} |"
                )
    return "\n".join(rows), found


def fleet(
    points: dict[tuple[int, int], dict[str, Any]],
    rate_per_minute: float,
    chars: int,
    calls: int,
    cores_per_host: int = 2,
) -> str:
    """What `rate_per_minute` executions of `chars` × `calls` need, from the nearest measured point."""
    nearest = min(points, key=lambda p: abs(math.log(p[0] / chars)) + abs(math.log(p[1] / calls)))
    r = points[nearest]
    scale = (chars / nearest[0], calls / nearest[1])
    per_second = rate_per_minute / 60
    cpu = sum(v for k, v in r["cpu_s"].items() if "model" not in k)
    api_root_cpu = (r["cpu_s"]["API"] + r["cpu_s"]["root worker"]) * scale[0]
    llm_cpu = (r["cpu_s"]["llm workers"] + r["cpu_s"]["Redis"] + r["cpu_s"]["Postgres"]) * scale[1]
    cores = per_second * (api_root_cpu + llm_cpu) / 0.7  # run cores at 70 %
    in_flight = per_second * calls * r["latency"]
    duration = r["end_to_end_s"]
    growth = max(r["rss_growth_mb"].values()) * scale[0]
    redis_mb_s = per_second * r["redis_in_bytes"] * scale[1] / 1e6
    return "\n".join(
        [
            f"For {rate_per_minute:g} executions a minute of {chars / 1e6:g} M characters × {calls:,} sub-calls "
            f"(scaled from the measured {nearest[0] / 1e6:g} M × {nearest[1]:,}: {cpu:.2f} s of engine CPU, "
            f"{duration:.1f} s end to end):",
            "",
            f"- engine cores (API, root, llm workers, Redis, Postgres) at 70 % busy: **{cores:.1f}**, "
            f"i.e. **{math.ceil(cores / cores_per_host)} hosts of {cores_per_host} cores**",
            f"- sub-calls in flight at {r['latency'] * 1000:.0f} ms a call: {in_flight:.0f}, i.e. "
            f"{math.ceil(in_flight / 32)} llm worker processes at 32 threads",
            f"- executions running at once: {per_second * duration:.1f} root threads "
            f"({math.ceil(per_second * duration / 4)} root processes of 4), each up to {growth:.0f} MB above idle",
            f"- Redis ingress: {redis_mb_s:.1f} MB/s; hosts: llm work is spread evenly, so N hosts each carry 1/N",
        ]
    )


def plot(points: dict[tuple[int, int], dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    for row, (by, unit, scale) in enumerate(
        (("chars", "input (M characters)", 1e6), ("calls", "sub-calls", 1.0))
    ):
        for col, (name, metric) in enumerate(METRICS.items()):
            ax = axes[row][col]
            for fixed, rs in series(points, by).items():
                xs = [r[by] / scale for r in rs]
                ys = [metric(r) for r in rs]
                label = f"{fixed:,} sub-calls" if by == "chars" else f"{fixed / 1e6:g} M chars"
                (line,) = ax.plot(xs, ys, "o", label=label)
                fit = Fit.of(xs, ys)
                grid = np.linspace(0, max(xs) * 1.05, 50)
                ax.plot(grid, fit.intercept + fit.slope * grid, "--", color=line.get_color(), alpha=0.6)
            ax.set_xlabel(unit)
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("RLM Engine: cost as the work grows (bench.data_path; dashed: linear fits)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--rate", type=float, default=60, help="executions a minute, for the fleet sizing")
    parser.add_argument("--chars", type=int, default=10_000_000)
    parser.add_argument("--calls", type=int, default=256)
    parser.add_argument("--cores-per-host", type=int, default=2)
    args = parser.parse_args()
    points = load(args.results)
    fit_table, _ = fits(points)
    print(
        table(points)
        + "\n\n"
        + fit_table
        + "\n\n"
        + fleet(points, args.rate, args.chars, args.calls, args.cores_per_host)
    )
    if args.plot is not None:
        plot(points, args.plot)


if __name__ == "__main__":
    main()
