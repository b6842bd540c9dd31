"""The reference implementation (PyPI `rlms`, the RLM paper's code) on the same program and server.

`RLM(...).completion(context, root_prompt=query)` with its defaults, its OpenAI client pointed at
the bench model server, so the root model answers with the same program our engine gets. Runs in
its own process (`python -m bench.reference --base-url ... --chars ... --chunks ...`) and prints
one JSON line: wall seconds of `completion()` and what the program measured.
"""

from __future__ import annotations

import argparse
import json
import time

from bench import programs
from bench.workload import make_context


def run_reference(base_url: str, chars: int, chunks: int) -> dict[str, float]:
    from rlm import RLM

    context = make_context(chars)
    rlm = RLM(
        backend="openai",
        backend_kwargs={"model_name": "bench-root", "base_url": base_url, "api_key": "bench"},
        environment="local",
        max_iterations=3,
    )
    started = time.perf_counter()
    result = rlm.completion(context, root_prompt=programs.query("fanout", chunks))
    wall = time.perf_counter() - started
    report = json.loads(result.response)
    return {"wall_seconds": wall, "fanout_seconds": report["seconds"], "count": report["count"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True, help="the model server's /v1 URL")
    parser.add_argument("--chars", type=int, default=10_000_000)
    parser.add_argument("--chunks", type=int, default=256)
    args = parser.parse_args()
    print(json.dumps(run_reference(args.base_url, args.chars, args.chunks)), flush=True)


if __name__ == "__main__":
    main()
