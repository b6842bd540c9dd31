"""Benchmark 5, throughput: executions per minute with N concurrent clients, each execution 20 sub-calls.

Every client loops for the measured window: submit (`POST /api/execute`), poll until finished, submit
the next. Executions finished in the window count; submit latency is the POST's round trip.
"""

from __future__ import annotations

import threading
import time

import httpx

from bench import programs
from bench.report import Section, table
from bench.stack import FINISHED, BenchStack
from bench.workload import Spread, make_context, percentile


def _client_loop(
    stack: BenchStack,
    context: str,
    subcalls: int,
    stop_at: float,
    finished: list[float],
    submits: list[float],
    errors: list[str],
) -> None:
    query = programs.query("small_batch", subcalls)
    with httpx.Client(base_url=str(stack.http.base_url), timeout=120) as http:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            response = http.post("/api/execute", json={"user_query": query, "context": context})
            submits.append(time.perf_counter() - started)
            if response.status_code != 202:
                errors.append(f"submit {response.status_code}")
                continue
            execution_id = response.json()["execution_id"]
            while True:
                time.sleep(0.1)
                body = http.get(f"/api/executions/{execution_id}").json()
                if body["status"] in FINISHED:
                    break
            if body["status"] == "succeeded":
                finished.append(time.monotonic())
            else:
                errors.append(f"{body['status']}: {body['error']}")


def one_window(stack: BenchStack, clients: int, subcalls: int, seconds: float) -> dict[str, float]:
    context = make_context(10_000, salt="throughput")
    finished: list[float] = []
    submits: list[float] = []
    errors: list[str] = []
    began = time.monotonic()
    stop_at = began + seconds
    threads = [
        threading.Thread(
            target=_client_loop, args=(stack, context, subcalls, stop_at, finished, submits, errors)
        )
        for _ in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} executions failed, e.g. {errors[:3]}")
    in_window = sum(1 for t in finished if t <= stop_at)
    return {
        "per_minute": in_window / seconds * 60,
        "submit_p50": percentile(submits, 50),
        "submit_p99": percentile(submits, 99),
    }


def benchmark(
    stack: BenchStack,
    clients: int = 50,
    subcalls: int = 20,
    seconds: float = 30.0,
    runs: int = 5,
    command: str = "python -m bench.run_all --only throughput",
) -> Section:
    one_window(stack, min(clients, 5), subcalls, 2.0)  # warm-up
    windows = [one_window(stack, clients, subcalls, seconds) for _ in range(runs)]
    rate = Spread.of([w["per_minute"] for w in windows])
    p50 = Spread.of([w["submit_p50"] * 1000 for w in windows])
    p99 = Spread.of([w["submit_p99"] * 1000 for w in windows])
    rows = [[str(clients), str(subcalls), rate.fmt("/min", 0), p50.fmt("ms", 1), p99.fmt("ms", 1)]]
    notes = [
        f"{runs} windows of {seconds:.0f} s (median, min–max), {stack.latency * 1000:.0f} ms model latency, "
        f"one root worker ({stack.root_threads} threads), {stack.llm_workers} llm worker processes × "
        f"{stack.llm_threads} threads, the API under gunicorn ({stack.web_workers} workers × 8 threads). "
        "Clients poll every 100 ms, which is part of the API's load."
    ]
    header = ["clients", "sub-calls each", "executions", "submit p50", "submit p99"]
    return Section("5. Throughput", command, table(header, rows), notes)
