"""The floor under benchmark 1: the fan-out's model calls made by litellm alone, with no engine.

One process sends `--calls` prompts of the fan-out's size through `litellm.acompletion` at once
(asyncio, one event loop: litellm's cheapest way to make concurrent calls) to the same model
server, and prints one JSON line: wall seconds and the process's CPU milliseconds per call. On a
machine with few cores this bounds any engine that calls models through litellm: the fan-out
cannot finish before `calls × CPU per call / cores`, however the calls are spread. Run:
`python -m bench.litellm_floor --base-url URL --calls 256 --processes 2`: with `--processes N`
the calls are split over N processes that start together once all have warmed up, so the figure
is what litellm alone does with every core of the machine. `--client sdk` makes the same calls the
way the engine's lean client does (the `openai` SDK's pooled async client, `rlm_worker/engine/
lean_client.py`): the floor of the lean path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _fan_out(base_url: str, calls: int, prompt: str, client: str = "litellm") -> list[str]:
    if client == "sdk":
        return await _fan_out_sdk(base_url, calls, prompt)
    import litellm

    from rlm_worker.engine.llm import without_unread_logging

    async def one() -> str:
        with without_unread_logging():  # as the engine's client does
            response = await litellm.acompletion(
                model="openai/bench-sub",
                messages=[{"role": "user", "content": prompt}],
                api_base=base_url,
                api_key="bench",
                num_retries=0,
            )
        return response.choices[0].message.content or ""

    return await asyncio.gather(*(one() for _ in range(calls)))


_sdk_clients: dict[int, object] = {}


async def _fan_out_sdk(base_url: str, calls: int, prompt: str) -> list[str]:
    """The lean client's request: the SDK's low-level POST on one pooled client per event loop."""
    import openai
    from openai.types.chat import ChatCompletion

    loop = id(asyncio.get_running_loop())
    client = _sdk_clients.get(loop) or _sdk_clients.setdefault(
        loop, openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    )

    async def one() -> str:
        response = await client.post(
            "/chat/completions",
            body={"model": "bench-sub", "messages": [{"role": "user", "content": prompt}]},
            cast_to=ChatCompletion,
            options={"timeout": 120.0},
        )
        return response.choices[0].message.content or ""

    return await asyncio.gather(*(one() for _ in range(calls)))


def measure(
    base_url: str, calls: int, prompt_chars: int, wait_for_go: bool = False, client: str = "litellm"
) -> dict[str, float]:
    """One process's share: warm up, (say ready and wait for the go,) make `calls` calls at once."""
    import litellm

    from rlm_worker.engine.llm import register_prices

    litellm.suppress_debug_info = True
    register_prices(json.loads(os.environ.get("MODEL_PRICES") or "{}"))  # as the engine's client does
    prompt = "How many chunks is this? Reply with a number.\n\n" + "x" * prompt_chars  # as the program's
    asyncio.run(_fan_out(base_url, 8, prompt, client))  # warm-up: imports, connections
    if wait_for_go:
        print("ready", flush=True)
        sys.stdin.readline()
    cpu, started = _cpu_seconds(), time.time()
    answers = asyncio.run(_fan_out(base_url, calls, prompt, client))
    return {
        "started": started,
        "finished": time.time(),
        "cpu_seconds": _cpu_seconds() - cpu,
        "count": sum(1 for a in answers if a.strip() == "1"),
    }


def measure_spread(
    base_url: str, calls: int, processes: int, prompt_chars: int, client: str = "litellm"
) -> dict[str, float]:
    """The calls split over `processes` processes started together; wall = first start → last end."""
    shares = [calls // processes + (1 if i < calls % processes else 0) for i in range(processes)]
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.litellm_floor",
                "--base-url",
                base_url,
                "--calls",
                str(share),
                "--prompt-chars",
                str(prompt_chars),
                "--client",
                client,
                "--child",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for share in shares
    ]
    for child in children:  # every process warmed up before any starts
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("a litellm_floor process failed to start")
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    reports = [json.loads(child.communicate(timeout=300)[0].strip().splitlines()[-1]) for child in children]
    return {
        "wall_seconds": max(r["finished"] for r in reports) - min(r["started"] for r in reports),
        "cpu_ms_per_call": sum(r["cpu_seconds"] for r in reports) / calls * 1000,
        "count": sum(r["count"] for r in reports),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True, help="the model server's /v1 URL")
    parser.add_argument("--calls", type=int, default=256)
    parser.add_argument("--prompt-chars", type=int, default=39_063)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--client", choices=["litellm", "sdk"], default="litellm")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        report = measure(args.base_url, args.calls, args.prompt_chars, wait_for_go=True, client=args.client)
    else:
        report = measure_spread(args.base_url, args.calls, args.processes, args.prompt_chars, args.client)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
