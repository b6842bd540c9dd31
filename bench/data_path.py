"""Benchmark 7, the data path of a large input, across simulated hosts.

The product runs as in `tests/distributed/test_hosts.py` (tests/support/host_cluster.py): a db
host with a private Redis and a throwaway Postgres, the model server on a host of its own, the API,
one root worker and four llm workers each on its own host. For every point of the grid (input
characters × sub-calls of `--latency` seconds, one `llm_query_batched` over the whole input) it
reports:

- end to end (POST with the input → result stored) against the ideal: the upload (POST → 202) +
  the root turn's model latency + one sub-call latency per wave of `SUBCALL_INFLIGHT_PER_EXECUTION`;
- the stages (`bench.stage_clock`): wall and CPU of request receipt, hashing, storing, the root's
  load, the REPL start (the context shipped into the sandbox), publishing, the fan-out, the leaf
  batches, trace writes and the final write;
- CPU of each kind of process (from /proc; the model server apart, not counted as ours), and the
  peak RSS of each process, sampled every 20 ms, against the input's size;
- bytes through Redis (`INFO stats` net input/output of the private server) and into Postgres
  (growth of `trace_nodes`, of `contexts`, and WAL written) per sub-call, against the prompt's size.

Run: `python -m bench.data_path` (the full grid: 1 M, 10 M, 50 M × 256, 1,024, 4,096) or
`--chars 1000000 --calls 256` for one point; `--smoke` is the tiny point the test suite runs.
Results are written as JSON lines (`--out`, default bench/results/data_path.jsonl) for
`bench.cost_model`, which fits and plots them. Needs root and iproute2 (network namespaces).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import programs, stage_clock
from bench.fanout import cpu_seconds
from bench.stack import tree_pids
from bench.workload import make_context
from tests.support.host_cluster import HostCluster

GRID_CHARS = (1_000_000, 10_000_000, 50_000_000)
GRID_CALLS = (256, 1_024, 4_096)
#: The issue's targets: end to end at 10 M × 256, memory at 50 M × 4,096.
TARGET_POINTS = ((10_000_000, 256), (50_000_000, 4_096))
STAGES = (
    "request receipt", "hashing", "storing", "root's load", "REPL start", "publish", "fan-out",
    "leaf batch", "trace writes", "final write",
)  # fmt: skip


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass(eq=False)
class PeakSampler(threading.Thread):
    """The largest RSS any one process of each group reached, sampled every `interval` s."""

    groups: dict[str, int]  # name -> root pid of the group's process tree
    interval: float = 0.02
    peaks: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(daemon=True)
        self._stop_event = threading.Event()

    def run(self) -> None:
        ticks = 0
        pids = {name: tree_pids(pid) for name, pid in self.groups.items()}
        while not self._stop_event.is_set():
            if ticks % 10 == 0:  # new children (a sandbox, a Postgres backend) every 0.2 s
                pids = {name: tree_pids(pid) for name, pid in self.groups.items()}
            for name, members in pids.items():
                biggest = max((_rss_kb(p) for p in members), default=0)
                self.peaks[name] = max(self.peaks.get(name, 0), biggest)
            ticks += 1
            self._stop_event.wait(self.interval)

    def stop(self) -> dict[str, int]:
        self._stop_event.set()
        self.join()
        return self.peaks


class DataPathBench:
    def __init__(self, llm_hosts: int = 4, llm_threads: int = 32, latency: float = 0.2) -> None:
        self.latency = latency
        self.clock = Path(os.environ.get("RLM_BENCH_TMP", "/var/tmp")) / f"rlm-stage-clock-{os.getpid()}"
        self.clock.mkdir(exist_ok=True)
        self.clock.chmod(0o777)
        self.cluster = HostCluster(
            llm_hosts=llm_hosts, llm_threads=llm_threads, latency=latency, clock=self.clock
        ).start()
        self.inflight = 256  # SUBCALL_INFLIGHT_PER_EXECUTION's default

    def groups(self) -> dict[str, int]:
        services = self.cluster.services
        out = {"API": services["api"].pid, "root worker": services["root"].pid}
        out.update({name: p.pid for name, p in services.items() if name.startswith("llm")})
        out["Redis"] = services["redis"].pid
        out["Postgres"] = services["postgres"].pid
        out["model server"] = services["model"].pid
        return out

    def _redis_bytes(self) -> tuple[int, int]:
        info = self.cluster.inside(lambda: self.cluster.redis().info("stats"))
        return int(info["total_net_input_bytes"]), int(info["total_net_output_bytes"])

    def _pg(self) -> dict[str, int]:
        row = self.cluster.sql(
            "SELECT pg_total_relation_size('trace_nodes'), pg_total_relation_size('contexts'),"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
        )[0]
        return {"trace_nodes": int(row[0]), "contexts": int(row[1]), "wal": int(row[2])}

    def point(self, chars: int, calls: int, run: int = 0) -> dict[str, Any]:
        context = make_context(chars, salt=f"data-path-{chars}-{calls}-{run}-{time.time()}")
        prompt_chars = len("How many chunks is this? Reply with a number.\n\n") + -(-chars // calls)
        self.cluster.http("POST", "/bench/reset", json={})
        groups = self.groups()
        cpu_before = {name: cpu_seconds(tree_pids(pid), reaped_children=True) for name, pid in groups.items()}
        redis_before, pg_before = self._redis_bytes(), self._pg()
        idle = {name: max((_rss_kb(p) for p in tree_pids(pid)), default=0) for name, pid in groups.items()}
        sampler = PeakSampler(groups)
        sampler.start()
        submitted = time.time()
        execution_id = self.cluster.submit(programs.query("fanout", calls), context)
        accepted = time.time()
        del context
        execution = self.cluster.wait(execution_id, timeout=1800)
        peaks = sampler.stop()
        if execution["status"] != "succeeded":
            raise RuntimeError(f"{chars:,} × {calls}: {execution['status']}: {execution['error']}")
        report = json.loads(execution["final_answer"])
        errors = self.cluster.sql(
            "SELECT error, count(*) FROM trace_nodes WHERE execution_id = %s AND kind = 'llm_call'"
            " AND status <> 'succeeded' GROUP BY error",
            execution_id,
        )
        cpu = {name: cpu_seconds(tree_pids(pid), reaped_children=True) - cpu_before[name] for name, pid in groups.items()}
        redis_after, pg_after = self._redis_bytes(), self._pg()
        finished = _epoch(execution["finished_at"])
        upload = accepted - submitted
        ideal = upload + self.latency + math.ceil(calls / self.inflight) * self.latency
        stages = stage_clock.stage_totals(self.clock, since=submitted)
        llm_names = [n for n in groups if n.startswith("llm")]
        return {
            "chars": chars,
            "calls": calls,
            "latency": self.latency,
            "llm_hosts": len(llm_names),
            "prompt_chars": prompt_chars,
            "upload_s": upload,
            "end_to_end_s": finished - submitted,
            "fanout_s": report["seconds"],
            "calls_made": report["calls"],  # the program's chunks: ceil(chars / ceil(chars / calls))
            "answered": report["count"],  # sub-calls whose answer came back right ("1")
            "failed": {str(error)[:300]: int(n) for error, n in errors},
            "ideal_s": ideal,
            "stages": {s: stages.get(s) for s in STAGES},
            "cpu_s": {
                "API": cpu["API"],
                "root worker": cpu["root worker"],
                "llm workers": sum(cpu[n] for n in llm_names),
                "Redis": cpu["Redis"],
                "Postgres": cpu["Postgres"],
                "model server (apart)": cpu["model server"],
            },
            "peak_rss_mb": {
                "API": peaks.get("API", 0) / 1024,
                "root worker (or its REPL)": peaks.get("root worker", 0) / 1024,
                "llm worker (largest)": max(peaks.get(n, 0) for n in llm_names) / 1024,
                "Redis": peaks.get("Redis", 0) / 1024,
                "Postgres (one backend)": peaks.get("Postgres", 0) / 1024,
            },
            # above the same process group's largest RSS just before the submit (idle imports)
            "rss_growth_mb": {
                "API": (peaks.get("API", 0) - idle["API"]) / 1024,
                "root worker (or its REPL)": (peaks.get("root worker", 0) - idle["root worker"]) / 1024,
                "llm worker (largest)": max(peaks.get(n, 0) - idle[n] for n in llm_names) / 1024,
                "Redis": (peaks.get("Redis", 0) - idle["Redis"]) / 1024,
                "Postgres (one backend)": (peaks.get("Postgres", 0) - idle["Postgres"]) / 1024,
            },
            "redis_in_bytes": redis_after[0] - redis_before[0],
            "redis_out_bytes": redis_after[1] - redis_before[1],
            "pg_trace_bytes": pg_after["trace_nodes"] - pg_before["trace_nodes"],
            "pg_context_bytes": pg_after["contexts"] - pg_before["contexts"],
            "pg_wal_bytes": pg_after["wal"] - pg_before["wal"],
            "load": Path("/proc/loadavg").read_text().split()[0],
        }

    def stop(self) -> None:
        self.cluster.stop()
        shutil.rmtree(self.clock, ignore_errors=True)


def _epoch(iso: str) -> float:
    from datetime import UTC, datetime

    value = datetime.fromisoformat(iso)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def summary(r: dict[str, Any]) -> str:
    """One point as a few readable lines (the JSON line has everything)."""
    mb = r["chars"] / 1e6
    made = r["calls_made"]
    per_call = {
        "Redis in": r["redis_in_bytes"] / made,
        "Redis out": r["redis_out_bytes"] / made,
        "trace_nodes growth": r["pg_trace_bytes"] / made,
        "WAL (less the context)": (r["pg_wal_bytes"] - r["pg_context_bytes"]) / made,
    }
    engine_cpu = sum(v for k, v in r["cpu_s"].items() if "model" not in k)
    lines = [
        f"{r['chars']:,} chars × {r['calls']} sub-calls of {r['latency'] * 1000:.0f} ms, {r['llm_hosts']} llm hosts "
        f"(load {r['load']}): end to end {r['end_to_end_s']:.2f} s, ideal {r['ideal_s']:.2f} s "
        f"({r['end_to_end_s'] / r['ideal_s']:.2f}×), upload {r['upload_s']:.2f} s, fan-out {r['fanout_s']:.2f} s, "
        f"answered {r['answered']} of {r['calls_made']}" + (f" FAILED: {r['failed']}" if r["failed"] else ""),
        "  stages (sum of wall / CPU s, calls): " + "; ".join(
            f"{s} {v['wall']:.3f}/{v['cpu']:.3f} ({int(v['calls'])})" for s, v in r["stages"].items() if v
        ),
        "  CPU s: " + ", ".join(f"{k} {v:.2f}" for k, v in r["cpu_s"].items())
        + f"; engine {engine_cpu / made * 1000:.2f} ms a sub-call",
        "  peak RSS MB (growth over idle, × input): "
        + ", ".join(
            f"{k} {v:.0f} (+{r['rss_growth_mb'][k]:.0f}, {r['rss_growth_mb'][k] / mb:.1f}×)"
            for k, v in r["peak_rss_mb"].items()
        ),
        f"  bytes a sub-call (prompt {r['prompt_chars']:,}): "
        + ", ".join(f"{k} {v:,.0f} ({v / r['prompt_chars']:.2f}×)" for k, v in per_call.items()),
    ]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chars", type=int, nargs="*", default=list(GRID_CHARS))
    parser.add_argument("--calls", type=int, nargs="*", default=list(GRID_CALLS))
    parser.add_argument("--runs", type=int, default=1, help="runs of each point")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--llm-hosts", type=int, default=4)
    parser.add_argument("--smoke", action="store_true", help="one tiny point (100 k × 64, 2 llm hosts)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/data_path.jsonl"))
    args = parser.parse_args()
    if args.smoke:
        args.chars, args.calls, args.llm_hosts = [100_000], [64], 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    bench = DataPathBench(llm_hosts=args.llm_hosts, latency=args.latency)
    try:
        bench.point(10_000, 16, run=-1)  # warm-up: imports, connections; not reported
        points = [(chars, calls) for chars in args.chars for calls in args.calls]
        points.sort(key=lambda p: p not in TARGET_POINTS)  # the targets' points first
        for (chars, calls), run in ((p, r) for p in points for r in range(args.runs)):
            result = bench.point(chars, calls, run)
            with open(args.out, "a") as out:
                out.write(json.dumps(result) + "\n")
            print(summary(result), flush=True)
    finally:
        bench.stop()
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
