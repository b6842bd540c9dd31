"""Benchmark 2, engine overhead per sub-call, at zero model latency.

One execution makes N sequential `llm_query` calls; the program times each one in the sandbox, so a
figure covers the whole trip: sandbox pipe → enqueue → litellm call → trace row written → result
back in the sandbox. Beside it, the bare model call to the same server, timed the same way in its
own process, so the engine's own share (the difference) is visible: the `openai` SDK call the lean
client makes (the default, LEAN_MODEL_CLIENT) and `litellm.completion` (LEAN_MODEL_CLIENT=false),
each against the engine running that path. The embedded mode (no Celery: an in-process thread
pool and SQLite) is measured the same way.

Bare and embedded run in a child process:
`python -m bench.overhead {bare,bare-sdk,embedded} --base-url URL`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import programs, stage_probe
from bench.report import Section, Target, table
from bench.stack import ROOT, BenchStack
from bench.workload import percentile


def _distribution(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "p99": percentile(values, 99)}


def _from_program(final_answer: str, calls: int) -> list[float]:
    report = json.loads(final_answer)
    if report["count"] != calls:
        raise RuntimeError(f"{report['count']} of {calls} sub-calls answered")
    return report["durations"]


def _arrival_gaps(stack: BenchStack, calls: int) -> list[float]:
    """Without a clock in the sandbox: the gaps between the last `calls` sub-calls reaching the server."""
    times = sorted(c["t"] for c in stack.model_calls()["calls"] if not c["root"])[-calls:]
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def distributed(stack: BenchStack, calls: int, lean: bool = True) -> list[float]:
    stack.set_lean(lean)
    stack.reset_model(latency=0.0)
    stack.run(programs.query("sequential", 20), "warm-up")
    stack.reset_model()
    done = stack.run(programs.query("sequential", calls), "a short context")
    durations = _from_program(done.execution["final_answer"], calls)
    return durations or _arrival_gaps(stack, calls)


def bare_celery(stack: BenchStack, calls: int) -> list[float]:
    """A Celery round trip with no model, no database and no sandbox: Celery's built-in no-op
    task (`celery.accumulate`, it returns its argument) sent to the llm workers' queue, then the
    result awaited as the dispatcher awaits it (pub/sub). What any Celery-based engine pays."""
    durations = []
    for i in range(calls + 20):
        started = time.perf_counter()
        result = stack.celery.send_task("celery.accumulate", args=(i,), queue="rlm.llm")
        if result.get(timeout=30, interval=0) != [i]:  # it returns its positional arguments
            raise RuntimeError("celery.accumulate answered something else")
        durations.append(time.perf_counter() - started)
        result.forget()
    return durations[20:]


def stage_breakdown(stack: BenchStack, calls: int) -> tuple[list[list[str]], float]:
    """A separate run with `bench.stage_probe` in the workers: the median of each stage of a
    sequential sub-call, and what the program itself timed (its p50), in milliseconds."""
    with tempfile.TemporaryDirectory(prefix="rlm-stages-") as folder:
        stack.stamp_stages(Path(folder))
        try:
            stack.run(programs.query("sequential", 20), "warm-up")
            started = time.time()  # the stamps of the warm-up come before
            done = stack.run(programs.query("sequential", calls), "a short context")
            segments, total, counted = stage_probe.stage_medians(Path(folder), since=started)
        finally:
            stack.stamp_stages(None)
    program = percentile(_from_program(done.execution["final_answer"], calls), 50)
    rows = [[label, f"{segments[pair] * 1000:.2f} ms"] for pair, label in stage_probe.SEGMENTS.items()]
    rows.append(["dispatcher handed the call → outcome back (median of the whole)", f"{total * 1000:.2f} ms"])
    rows.append(["sandbox ⇄ root worker: pipe, engine handler (program's p50 minus the line above)",
                 f"{(program - total) * 1000:.2f} ms"])  # fmt: skip
    rows.append(
        [f"the program's own timing, p50 ({counted} calls with every stage)", f"{program * 1000:.2f} ms"]
    )
    return rows, program


def in_child(mode: str, base_url: str, calls: int, gap: float = 0.0) -> list[float]:
    env = {
        **os.environ,
        "LLM_API_BASE": base_url,
        "LLM_API_KEY": "bench",
        "DEFAULT_MODEL": "openai/bench-root",
        "SUB_MODEL": "openai/bench-sub",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "MODEL_PRICES": '{"openai/bench-sub": {"input_cost_per_token": 1e-07, "output_cost_per_token": 4e-07}}',
    }
    env.pop("DATABASE_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "bench.overhead", mode, "--base-url", base_url, "--calls", str(calls),
         "--gap", str(gap)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True, timeout=900,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def benchmark(
    stack: BenchStack, calls: int = 2000, command: str = "python -m bench.run_all --only overhead"
) -> Section:
    base_url = f"{stack.model_url}/v1"
    previous = stack.latency
    stack.reset_model(latency=0.0)
    try:
        # The default path's two figures are each pooled from two runs, one before and one after
        # the litellm path's, so a change in the shared machine's load weighs on both paths alike.
        sdk_runs = in_child("bare-sdk", base_url, calls)
        bare = _distribution(in_child("bare", base_url, calls))
        plain = _distribution(bare_celery(stack, calls))
        lean_runs = distributed(stack, calls, lean=True)
        heavy = _distribution(distributed(stack, calls, lean=False))
        lean = _distribution(lean_runs + distributed(stack, calls, lean=True))
        sdk = _distribution(sdk_runs + in_child("bare-sdk", base_url, calls))
        # The same bare call, but idle between calls for as long as the engine's other stages take:
        # a call made after an idle pause costs more than one in a tight loop (caches, CPU wake-up).
        idle = max(0.0, lean["p50"] - sdk["p50"])
        spaced = _distribution(in_child("bare-sdk", base_url, calls, gap=idle))
        stages, _ = stage_breakdown(stack, min(calls, 500))
        stack.reset_model()
        embedded = _distribution(in_child("embedded", base_url, calls) or _arrival_gaps(stack, calls))
    finally:
        stack.set_lean(True)
        stack.reset_model(latency=previous)

    def ms(value: float) -> str:
        return f"{value * 1000:.2f} ms"

    def row(label: str, d: dict[str, float], against: dict[str, float] | None = None) -> list[str]:
        share = (
            "–" if against is None else f"{ms(d['p50'] - against['p50'])} / {ms(d['p99'] - against['p99'])}"
        )
        return [label, ms(d["p50"]), ms(d["p95"]), ms(d["p99"]), share]

    over50, over99 = lean["p50"] - sdk["p50"], lean["p99"] - sdk["p99"]
    rows = [
        row("bare `openai` SDK call (what the lean client sends)", sdk),
        row(f"bare `openai` SDK call, {ms(idle)} idle between calls", spaced),
        row("bare `litellm.completion`", bare),
        row("bare Celery task (no model, no database)", plain),
        row("distributed (Celery, Postgres), lean client (default), vs the bare SDK call", lean, sdk),
        row("distributed, `LEAN_MODEL_CLIENT=false`, vs bare `litellm.completion`", heavy, bare),
        row("embedded (threads, SQLite), lean client, vs the bare SDK call", embedded, sdk),
    ]
    notes = [
        f"{calls:,} sequential sub-calls each, 0 ms model latency, percentiles by nearest rank; the lean "
        "client's round trip and the bare SDK call are each two runs of that many, one before and one after "
        "the litellm path's. The engine's "
        "share is the round trip minus the bare call of the same client path at the same percentile. The "
        "bare Celery task is Celery's built-in no-op (`celery.accumulate`) sent to the same llm worker and "
        "awaited the same way from the harness: the part of the engine's share that is Celery's own "
        f"({ms(plain['p50'])} of {ms(over50)} at p50)."
    ]
    notes += [
        "",
        f"Where the distributed round trip goes: `bench/stage_probe.py` stamps each stage in the workers "
        f"(Celery's own signals, and wrappers around the dispatcher, the model client and the trace sink) in "
        f"a separate run of {min(calls, 500)} sequential calls, lean client; medians of each stage.",
        "",
        table(["stage of one sub-call", "p50"], stages),
        "",
        f"Idle between bare calls: a bare SDK call made after {ms(idle)} of idle (the engine's share, the "
        f"time the llm worker waits between two sequential calls) takes {ms(spaced['p50'])} at p50 against "
        f"{ms(sdk['p50'])} in a tight loop; the target above is judged against the tight loop.",
    ]
    targets = [
        Target("overhead beyond the bare call, p50", ms(over50), "< 3 ms", over50 < 0.003),
        Target("overhead beyond the bare call, p99", ms(over99), "< 25 ms", over99 < 0.025),
    ]
    header = ["sub-call round trip", "p50", "p95", "p99", "engine share p50 / p99"]
    return Section("2. Engine overhead per sub-call", command, table(header, rows), notes, targets)


# -- the child process --------------------------------------------------------------------------
def _bare(base_url: str, calls: int, gap: float = 0.0) -> list[float]:
    from rlm_worker.engine.llm import _lib, register_prices, without_unread_logging

    litellm = _lib()
    # The same litellm work as the engine's client: its prices registered, its unread logging skipped.
    register_prices(json.loads(os.environ["MODEL_PRICES"]))
    kwargs = {"model": "openai/bench-sub", "api_base": base_url, "api_key": "bench", "num_retries": 0}
    messages = [{"role": "user", "content": "ping"}]
    with without_unread_logging():
        for _ in range(20):
            litellm.completion(messages=messages, **kwargs)
        durations = []
        for _ in range(calls):
            started = time.perf_counter()
            litellm.completion(messages=messages, **kwargs)
            durations.append(time.perf_counter() - started)
            if gap:
                time.sleep(gap)
    return durations


def _bare_sdk(base_url: str, calls: int, gap: float = 0.0) -> list[float]:
    """The lean client's own request (rlm_worker/engine/lean_client.py) with nothing around it."""
    import openai

    from rlm_worker.engine.lean_client import _client_args, _request, lean_route

    route = lean_route(
        {"model": "openai/bench-sub", "api_base": base_url, "api_key": "bench", "timeout": 120}
    )
    if route is None:
        raise RuntimeError("openai/bench-sub does not take the lean path")
    client = openai.OpenAI(**_client_args(route))
    request = _request(route, [{"role": "user", "content": "ping"}])
    for _ in range(20):
        client.post(**request)
    durations = []
    for _ in range(calls):
        started = time.perf_counter()
        client.post(**request)
        durations.append(time.perf_counter() - started)
        if gap:
            time.sleep(gap)
    return durations


def _embedded(calls: int) -> list[float]:
    from rlm_api.cli.local_app import open_app

    with tempfile.TemporaryDirectory() as folder:
        app = open_app(f"sqlite:///{folder}/bench.db", "embedded", quiet=True)
        client = app.test_client()

        def run(n: int) -> dict:
            response = client.post(
                "/api/execute", json={"user_query": programs.query("sequential", n), "context": "x"}
            )
            execution_id = response.get_json()["execution_id"]
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                body = client.get(f"/api/executions/{execution_id}").get_json()
                if body["status"] not in ("queued", "running"):
                    return body
                time.sleep(0.05)
            raise TimeoutError("embedded execution did not finish")

        run(20)
        body = run(calls)
        if body["status"] != "succeeded":
            raise RuntimeError(f"embedded execution {body['status']}: {body['error']}")
        return _from_program(body["final_answer"], calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["bare", "bare-sdk", "embedded"])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--gap", type=float, default=0.0, help="bare: seconds idle between calls")
    args = parser.parse_args()
    if args.mode == "bare":
        durations = _bare(args.base_url, args.calls, args.gap)
    elif args.mode == "bare-sdk":
        durations = _bare_sdk(args.base_url, args.calls, args.gap)
    else:
        durations = _embedded(args.calls)
    print(json.dumps(durations), flush=True)


if __name__ == "__main__":
    main()
