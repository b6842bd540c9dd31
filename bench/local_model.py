"""The local model as a user meets it: `python -m bench.local_model [--calls N]`.

Prints a markdown table (for BENCHMARKS.md) of three figures, each against its target in issue 15:
1. `rlm run samples/northern_tern_log.txt -q "Which seaman was killed?" --strategy find` (79
   paragraph calls to the local model): wall time of the CLI process and its answer, target < 60 s.
2. The quick start `rlm run samples/devils_dictionary_a_b.txt -q "In what year was The Devil's
   Dictionary begun?"`, after a first run: the CLI process's wall time (imports, model load and
   all), and the same execution run twice in one process, the second time warm (what `rlm serve`
   gives every request after its first), target < 8 s.
3. Tokens per second (prompt + answer) of 6 chunk calls through the engine (LocalModelQueue,
   litellm, HTTP, the embedded dispatcher, trace writes) against the same calls made on
   xllamacpp's server object directly, target within 1.3x.

The CLI runs use a fresh data folder and no provider, so they take the offline plan.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIND = ["samples/northern_tern_log.txt", "-q", "Which seaman was killed?", "--strategy", "find"]
QUICK = ["samples/devils_dictionary_a_b.txt", "-q", "In what year was The Devil's Dictionary begun?"]
PROVIDER = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "LLM_API_BASE",
    "DEFAULT_MODEL",
    "SUB_MODEL",
    "DATABASE_URL",
)


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def cli_env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER}
    return {**env, "XDG_DATA_HOME": str(data), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def cli_seconds(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "rlm_api.cli", "run", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    took = time.monotonic() - started
    if done.returncode not in (0, 3):  # 3: ran to the end and found no answer (an outcome)
        raise SystemExit(f"rlm run {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return took, done.stdout.strip()


def in_process_warm(data: Path) -> float:
    """The quick start executed twice in this process; the second run's seconds."""
    os.environ.update(cli_env(data))
    from rlm_api.cli.local_app import embedded_database_url, open_app
    from rlm_api.cli.run import create_execution, plan_run
    from rlm_api.embedded import run_embedded

    app = open_app(embedded_database_url(), quiet=True)
    text = (ROOT / QUICK[0]).read_text(encoding="utf-8")
    took = 0.0
    for _ in range(2):
        with app.app_context():
            plan = plan_run(app.config["RLM_SETTINGS"], None, None, None, None)
            execution_id = create_execution(text, QUICK[2], plan, None)
        started = time.monotonic()
        assert run_embedded(app, execution_id) == "succeeded"
        took = time.monotonic() - started
    return took


def tokens_per_second(calls: int) -> tuple[float, float]:
    """(engine, direct) tokens per second over the same `calls` chunk prompts, `slots` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from rlm_shared.strategies.common import EXTRACT_PROMPT, split_chunks
    from rlm_worker.dispatchers import InProcessDispatcher
    from rlm_worker.engine import local_model
    from rlm_worker.engine.memory_sink import InMemoryTraceSink
    from rlm_worker.engine.types import LLMCall
    from rlm_worker.services import model_client

    text = (ROOT / FIND[0]).read_text(encoding="utf-8")
    chunks = split_chunks(text, 1000)[:calls]

    def prompts_for(path: str) -> list[str]:
        # A prefix of its own per path: llama.cpp reuses a slot's cached prompt prefix, and the
        # second path must not be served from what the first one computed.
        return [f"({path})\n" + EXTRACT_PROMPT.format(question=FIND[2], text=c) for c in chunks]

    server = local_model.server()
    slots = server.settings.slots
    request = {k: v for k, v in local_model.litellm_kwargs(local_model.DEFAULT_LOCAL_MODEL).items()}
    body = {k: request[k] for k in ("temperature", "seed", "stop")}  # the engine's own request fields

    def direct(prompt: str) -> int:
        usage = server._server.handle_chat_completions(
            {**body, "messages": [{"role": "user", "content": prompt}]}
        )["usage"]
        return usage["prompt_tokens"] + usage["completion_tokens"]

    direct("warm up")  # both paths start warm
    started = time.monotonic()
    with ThreadPoolExecutor(slots) as pool:
        direct_tokens = sum(pool.map(direct, prompts_for("direct")))
    direct_rate = direct_tokens / (time.monotonic() - started)

    sink = InMemoryTraceSink()
    batch = [
        LLMCall(
            execution_id="bench",
            node_id=f"n{i}",
            parent_id="bench",
            path=f"{i:04d}",
            depth=1,
            seq=i,
            model=local_model.DEFAULT_LOCAL_MODEL,
            prompt=p,
        )
        for i, p in enumerate(prompts_for("engine"))
    ]
    started = time.monotonic()
    outcomes = InProcessDispatcher(model_client(), sink).run_llm_calls(batch)
    engine_rate = sum(o.input_tokens + o.output_tokens for o in outcomes) / (time.monotonic() - started)
    assert all(o.error is None for o in outcomes), [o.error for o in outcomes]
    return engine_rate, direct_rate


class Rows:
    """Prints each row of the table as soon as it is measured (a long run cut short keeps them)."""

    def append(self, row: tuple[str, str, str, bool, str]) -> None:
        name, figure, target, met, at_load = row
        print(f"| {name} | {figure} | {target} | {'yes' if met else 'NO'} | {at_load} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=6, help="chunk calls of the tokens/s comparison")
    parser.add_argument("--find-runs", type=int, default=1, help="`find` CLI runs (the median is shown)")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="rlm-bench-local-"))
    print("| measure | figure | target | met | load (1 min) |")
    print("|---|---|---|---|---|", flush=True)
    rows = Rows()
    try:
        env = cli_env(data)
        cli_seconds(QUICK, env)  # the first run: migrations, byte-code, the model file into the page cache
        quick_cli, answer = cli_seconds(QUICK, env)
        rows.append(
            ("quick start, CLI process (2nd run)", f"{quick_cli:.1f} s", "< 8 s", quick_cli < 8, load())
        )
        warm = in_process_warm(data)
        rows.append(("quick start, in-process warm", f"{warm:.1f} s", "< 8 s", warm < 8, load()))
        runs = [cli_seconds(FIND, env) for _ in range(args.find_runs)]
        find = statistics.median(took for took, _ in runs)
        found = runs[-1][1] or "no answer"
        each = ", ".join(f"{took:.1f}" for took, _ in runs)
        rows.append(
            (
                f"`--strategy find`, ship log, CLI (median of {args.find_runs}: {each} s)",
                f"{find:.1f} s, answered {found[:60]!r}",
                "< 60 s",
                find < 60,
                load(),
            )
        )
        engine, direct = tokens_per_second(args.calls)
        ratio = direct / engine
        rows.append(
            (
                f"tokens/s, engine vs direct ({args.calls} calls)",
                f"{engine:.0f} vs {direct:.0f} ({ratio:.2f}x)",
                "within 1.3x",
                ratio <= 1.3,
                load(),
            )
        )
    finally:
        shutil.rmtree(data, ignore_errors=True)
    from rlm_worker.engine import local_model

    settings = local_model.server().settings
    print(
        f"\nlocal model: {settings.path.rsplit('/', 1)[-1]}, {settings.slots} slot(s), "
        f"{settings.threads or os.cpu_count()} thread(s); quick start answered: {answer[:80]!r}"
    )


if __name__ == "__main__":
    main()
