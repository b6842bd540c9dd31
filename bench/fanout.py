"""Benchmark 1, fan-out: one execution, a long context in N chunks, one `llm_query_batched`.

Reported against the ideal `ceil(chunks / slots) × latency` (slots = llm processes × threads) for
1, 2 and 4 llm worker processes, and against the reference implementation (`rlms`) on the same
program and model server, its runs interleaved with ours in the same session.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench import programs
from bench.report import Section, Target, table
from bench.stack import ROOT, BenchStack
from bench.workload import Spread, make_context


@dataclass
class FanoutRun:
    wall: float  # submit → result stored (ours) / completion() (reference)
    fanout: float  # what the program saw llm_query_batched take
    peak: int  # the model server's peak concurrency
    cpu_ms_per_call: float = float("nan")  # every engine process (API, root, llm workers), per sub-call
    by_process: dict[str, float] = field(default_factory=dict)  # CPU ms per sub-call of each kind of process


def cpu_seconds(pids: list[int], reaped_children: bool = False) -> float:
    """User + system CPU of these processes so far, from /proc (gone processes count 0); with
    `reaped_children`, also that of their children already waited for (a worker's sandboxes)."""
    last = 15 if reaped_children else 13
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(f) for f in fields[11:last])
    return ticks / os.sysconf("SC_CLK_TCK")


def _by_process(stack: BenchStack) -> dict[str, list[int]]:
    """The processes of the machine that work during a run, by kind (all of Postgres and Redis)."""

    def pgrep(*args: str) -> list[int]:
        found = subprocess.run(["pgrep", *args], capture_output=True, text=True).stdout.split()
        return [int(pid) for pid in found]

    return {
        "llm workers": [
            pid for name in stack.processes if name.startswith("llm") for pid in stack.pids(name)
        ],
        "root worker": stack.pids("root"),
        "API": stack.pids("api"),
        "Postgres": pgrep("-u", "postgres"),
        "Redis": pgrep("-x", "redis-server"),
        "model server (the harness)": stack.pids("model"),
    }


ENGINE = ("llm workers", "root worker", "API")


def run_ours(stack: BenchStack, context: str, chunks: int) -> FanoutRun:
    stack.reset_model()
    groups = _by_process(stack)
    before = {kind: cpu_seconds(pids) for kind, pids in groups.items()}
    done = stack.run(programs.query("fanout", chunks), context)
    groups["Postgres"] = sorted(set(groups["Postgres"]) | set(_by_process(stack)["Postgres"]))  # new backends
    by_process = {
        kind: (cpu_seconds(pids) - before.get(kind, 0.0)) / chunks * 1000 for kind, pids in groups.items()
    }
    cpu = sum(by_process[kind] for kind in ENGINE) * chunks / 1000
    report = json.loads(done.execution["final_answer"])
    if report["count"] != chunks:
        raise RuntimeError(f"fan-out answered {report['count']} of {chunks} sub-calls")
    return FanoutRun(
        done.wall_seconds,
        report["seconds"] or float("nan"),
        stack.model_calls()["peak_concurrency"],
        cpu / chunks * 1000,
        by_process,
    )


def run_floor(
    stack: BenchStack, chars: int, chunks: int, processes: int, client: str = "litellm"
) -> FanoutRun:
    """litellm (or, `client="sdk"`, the lean client's SDK call) alone making the same calls, spread
    over `processes` processes (bench.litellm_floor)."""
    stack.reset_model()
    out = subprocess.run(
        [sys.executable, "-m", "bench.litellm_floor", "--base-url", f"{stack.model_url}/v1", "--calls",
         str(chunks), "--processes", str(processes), "--prompt-chars", str(-(-chars // chunks)), "--client", client],
        cwd=ROOT, env=stack.env, capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    if report["count"] != chunks:
        raise RuntimeError(f"{client} alone answered {report['count']} of {chunks} calls")
    return FanoutRun(
        report["wall_seconds"],
        report["wall_seconds"],
        stack.model_calls()["peak_concurrency"],
        report["cpu_ms_per_call"],
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
    both_paths: bool = True,
) -> Section:
    context = make_context(chars)
    rows, targets, notes = [], [], []
    ours_at_max: list[FanoutRun] = []
    litellm_path: list[FanoutRun] = []
    theirs: list[FanoutRun] = []
    floor: list[FanoutRun] = []
    sdk_floor: list[FanoutRun] = []
    most = max(worker_counts)
    stack.set_lean(True)
    for count in worker_counts:
        stack.set_llm_workers(count)
        slots = count * stack.llm_threads
        ideal = math.ceil(chunks / slots) * stack.latency
        run_ours(stack, context, chunks)  # warm-up: connections, imports; not counted
        ours: list[FanoutRun] = []
        last = count == most
        for i in range(runs):
            print(f"[fanout] run {i + 1} of {runs}", file=sys.stderr, flush=True)
            if both_paths and last:
                # The two model-client paths in the order lean, litellm, litellm, lean, lean, ...: each
                # switch restarts the workers (LEAN_MODEL_CLIENT), then warms them up, uncounted.
                for lean in (True, False) if i % 2 == 0 else (False, True):
                    _switch(stack, lean, context, chunks)
                    (ours if lean else litellm_path).append(run_ours(stack, context, chunks))
            else:
                ours.append(run_ours(stack, context, chunks))
            if reference and last:
                theirs.append(run_reference(stack, chars, chunks))
                floor.append(run_floor(stack, chars, chunks, processes=count))
                sdk_floor.append(run_floor(stack, chars, chunks, processes=count, client="sdk"))
        if last:
            ours_at_max = ours
        rows.append(_row(f"{count} × {stack.llm_threads} threads", ours, ideal))
        if last and litellm_path:
            rows.append(
                _row(f"{count} × {stack.llm_threads} threads, `LEAN_MODEL_CLIENT=false`", litellm_path, ideal)
            )
    stack.set_lean(True)
    ideal_max = math.ceil(chunks / (most * stack.llm_threads)) * stack.latency
    if floor:
        label = f"litellm alone, no engine ({most} process{'es' if most > 1 else ''})"
        rows.append(_row(label, floor, ideal_max, wall=False))
    if sdk_floor:
        label = f"`openai` SDK alone, no engine ({most} process{'es' if most > 1 else ''})"
        rows.append(_row(label, sdk_floor, ideal_max, wall=False))
    if theirs:
        rows.append(_row("reference `rlms` (its defaults)", theirs, None, cpu=False))
        fan = Spread.of([r.fanout for r in theirs])
        wall = Spread.of([r.wall for r in theirs])
        ours_fan = Spread.of([r.fanout for r in ours_at_max])
        ours_wall = Spread.of([r.wall for r in ours_at_max])
        fan_ratio = fan.median / ours_fan.median
        wall_ratio = wall.median / ours_wall.median
        floor_ratio = fan.median / Spread.of([r.fanout for r in floor]).median
        path_note = ""
        if litellm_path:
            heavy = Spread.of([r.fanout for r in litellm_path]).median
            path_note = (
                f" With `LEAN_MODEL_CLIENT=false` (litellm for every sub-call, the same runs interleaved) the "
                f"fan-out is {fan.median / heavy:.1f}× faster than the reference and {heavy / ideal_max:.2f}× the ideal."
            )
        notes.append(
            f"Against the reference with {most} llm processes: **{fan_ratio:.1f}× faster** on the "
            f"fan-out itself (what the program timed around `llm_query_batched`), **{wall_ratio:.1f}× faster** "
            "end to end (ours: `POST /api/execute` with the context → result stored; the reference: "
            "`RLM.completion()` in one process, no HTTP, no database, no trace). litellm alone, making the "
            f"same calls with no engine at all, is {floor_ratio:.1f}× faster than the reference: the most an "
            "engine sending every call through litellm could reach on this machine." + path_note
        )
        targets.append(
            Target(
                "fan-out vs reference (4 × 32)",
                f"{fan_ratio:.1f}× (end to end {wall_ratio:.1f}×; litellm alone {floor_ratio:.1f}×)",
                "≥ 5×",
                fan_ratio >= 5,
            )
        )
    best = Spread.of([r.fanout for r in ours_at_max]) if ours_at_max else None
    if best:
        floor_note = ""
        if floor:
            alone = Spread.of([r.fanout for r in floor]).median
            floor_note = f"; litellm alone {alone / ideal_max:.2f}×"
        targets.append(
            Target("fan-out vs ideal (4 × 32)", f"{best.median / ideal_max:.2f}× ({best.median:.3f} s{floor_note})",
                   "≤ 1.5×", best.median / ideal_max <= 1.5)
        )  # fmt: skip
    notes.append(
        f"{chunks} sub-calls over {chars:,} characters, {stack.latency * 1000:.0f} ms model latency, medians of "
        f"{runs} runs (min–max) after one warm-up run. *fan-out* is what the root program measured around its "
        "one `llm_query_batched` call (same program text for both engines); *end to end* is submit → answer. "
        "Peak = the most sub-calls the model server saw at once. *CPU / call* = user + system CPU of every "
        "engine process (API, root worker, llm workers; not the model server, not Postgres or Redis) over "
        "the run, divided by the sub-calls; for *litellm alone* (`python -m bench.litellm_floor`), the CPU "
        "of its processes: the same prompts sent with `litellm.acompletion` (set up as the engine's client "
        "sets it up: prices registered, unread logging skipped), split over as many processes "
        "as our llm workers and started together, no queue, no sandbox, no trace."
    )
    if ours_at_max:
        harness = "model server (the harness)"
        engine_cpu = sum(
            Spread.of([r.by_process[k] for r in ours_at_max]).median
            for k in ours_at_max[0].by_process
            if k != harness
        )
        targets.append(
            Target(f"CPU per sub-call, engine + Postgres + Redis ({most} × {stack.llm_threads})",
                   f"{engine_cpu:.2f} ms", "≤ 2.5 ms", engine_cpu <= 2.5)
        )  # fmt: skip
        notes += ["", *_cpu_table(ours_at_max, litellm_path, floor, sdk_floor, most, stack.llm_threads)]
    header = ["llm workers", "ideal", "fan-out", "vs ideal", "end to end", "peak", "CPU / call"]
    return Section("1. Fan-out", command, table(header, rows), notes, targets)


def _cpu_table(
    ours: list[FanoutRun],
    litellm_path: list[FanoutRun],
    floor: list[FanoutRun],
    sdk_floor: list[FanoutRun],
    workers: int,
    threads: int,
) -> list[str]:
    """Where the two cores go during one execution: CPU per sub-call of each kind of process, for
    the lean client (the default) and, beside it, litellm for every call."""
    kinds = list(ours[0].by_process)
    paths = [ours, litellm_path] if litellm_path else [ours]

    def medians(runs: list[FanoutRun]) -> dict[str, float]:
        return {kind: Spread.of([r.by_process[kind] for r in runs]).median for kind in kinds}

    columns = [medians(runs) for runs in paths]
    rows = [[kind, *(f"{m[kind]:.2f} ms" for m in columns)] for kind in kinds]
    harness = "model server (the harness)"
    rows.append(["every engine process, with Postgres and Redis (not the harness)",
                 *(f"**{sum(v for k, v in m.items() if k != harness):.2f} ms**" for m in columns)])  # fmt: skip
    rows.append(["all of them", *(f"{sum(m.values()):.2f} ms" for m in columns)])
    for label, runs in (
        ("litellm alone, its processes", floor),
        ("`openai` SDK alone, its processes", sdk_floor),
    ):
        if runs:
            figure = f"{Spread.of([r.cpu_ms_per_call for r in runs]).median:.2f} ms"
            rows.append([f"{label} (beside: the llm workers' row)", *([figure] * len(columns))])
    header = ["process", "lean client (default)", "`LEAN_MODEL_CLIENT=false`"][: len(columns) + 1]
    return [
        f"CPU per sub-call by process, {workers} × {threads} (medians of the runs above; the whole execution, "
        "so the API's and root's rows include receiving, storing and loading the 10 M context; Postgres and "
        "Redis are every process of those servers; the sandbox's own process is not counted):",
        "",
        table(header, rows),
    ]


def _switch(stack: BenchStack, lean: bool, context: str, chunks: int) -> None:
    """Restart the workers on the other model-client path (if it changes) and warm them up."""
    if stack.env.get("LEAN_MODEL_CLIENT", "true").lower() == ("true" if lean else "false"):
        return
    stack.set_lean(lean)
    run_ours(stack, context[: chunks * 1000], chunks)  # imports and connections in every process


def _row(
    label: str, runs: list[FanoutRun], ideal: float | None, wall: bool = True, cpu: bool = True
) -> list[str]:
    fan = Spread.of([r.fanout for r in runs])
    return [
        label,
        f"{ideal:.2f} s" if ideal is not None else "–",
        fan.fmt(),
        f"{fan.median / ideal:.2f}×" if ideal is not None else "–",
        Spread.of([r.wall for r in runs]).fmt() if wall else "–",
        str(max(r.peak for r in runs)),
        f"{Spread.of([r.cpu_ms_per_call for r in runs]).median:.1f} ms" if cpu else "–",
    ]
