"""The model client's own CPU a call, both paths side by side: the lean client and litellm.

One process, the engine's `LeanModelClient` with `lean=True` and `lean=False` (LEAN_MODEL_CLIENT),
each sending 256 fan-out prompts (39 kB) at once with `acomplete` on one event loop, as an llm
worker does, to `bench/model_server.py` (200 ms latency) in its own process. The runs alternate
lean, litellm, litellm, lean, ... after one warm-up of each (imports, pooled connections); it
prints one JSON line per path: median CPU ms a call of this process, median wall. Run:
`python -m bench.client_cpu --runs 5`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MODEL = "openai/bench-sub"
PRICES = {MODEL: {"input_cost_per_token": 1e-07, "output_cost_per_token": 4e-07}}
PROMPT = "How many chunks is this? Reply with a number.\n\n" + "x" * 39_063  # as the fan-out's


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _fan_out(client: object, calls: int) -> None:
    messages = [{"role": "user", "content": PROMPT}]
    replies = await asyncio.gather(*(client.acomplete(MODEL, messages) for _ in range(calls)))  # type: ignore[attr-defined]
    if not all(reply.text.strip() == "1" for reply in replies):
        raise RuntimeError("a call did not get the model server's answer")


async def _measure(base_url: str, runs: int, calls: int) -> dict[bool, list[tuple[float, float]]]:
    from rlm_worker.engine.lean_client import LeanModelClient

    clients = {
        lean: LeanModelClient(api_base=base_url, api_key="bench", prices=PRICES, lean=lean)
        for lean in (True, False)
    }
    for client in clients.values():
        await _fan_out(client, calls)  # warm-up
    results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for i in range(runs):
        for lean in (True, False) if i % 2 == 0 else (False, True):
            cpu, wall = time.process_time(), time.monotonic()
            await _fan_out(clients[lean], calls)
            results[lean].append(((time.process_time() - cpu) / calls * 1000, time.monotonic() - wall))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=256)
    args = parser.parse_args()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.model_server", "--port", str(port), "--latency", "0.2"],
        stdout=subprocess.DEVNULL,
    )
    try:
        import httpx

        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/bench/calls")
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        results = asyncio.run(_measure(f"http://127.0.0.1:{port}/v1", args.runs, args.calls))
    finally:
        server.terminate()
        server.wait()
    for lean, runs in results.items():
        print(
            json.dumps(
                {
                    "path": "lean client" if lean else "litellm (LEAN_MODEL_CLIENT=false)",
                    "cpu_ms_per_call": round(statistics.median(r[0] for r in runs), 2),
                    "wall_seconds": round(statistics.median(r[1] for r in runs), 3),
                    "cpu_runs": [round(r[0], 2) for r in runs],
                }
            )
        )


if __name__ == "__main__":
    main()
