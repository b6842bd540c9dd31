"""Wall time and CPU of each stage of a large input's path, for `bench.data_path`.

Loaded only into the benchmark's processes when `RLM_STAGE_CLOCK` names a folder: Celery workers
with `celery worker -I bench.stage_clock`, the API through `bench.stage_clock:api_app()` as
gunicorn's app. It changes no behaviour: thin wrappers around public functions record, for every
call, the wall seconds and the CPU seconds of the calling thread (`time.thread_time`), appended as
`<stage> <start epoch> <wall> <cpu>` lines to `<folder>/<pid>.txt`. `stage_totals` adds them up.

Stages (the process they run in): request receipt (API: the body read and parsed), hashing (API:
sha256 of the text), storing (API: the context row inserted, hashing included), root's load (root:
the context read from Postgres), REPL start (root: the sandbox process started with the context),
publish (root: sub-call messages sent to Redis), fan-out (root: one `llm_query_batched`, from
dispatch to the last answer), leaf batch (llm workers: one message's model calls and its trace
write), trace writes (root and llm workers: every trace upsert), final write (root: the result
stored).
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

FOLDER_ENV = "RLM_STAGE_CLOCK"
_lock = threading.Lock()
_file: Any = None


def _write(stage: str, started: float, wall: float, cpu: float) -> None:
    global _file
    with _lock:
        if _file is None:
            _file = open(Path(os.environ[FOLDER_ENV]) / f"{os.getpid()}.txt", "a", buffering=1)  # noqa: SIM115
        _file.write(f"{stage.replace(' ', '_')} {started:.6f} {wall:.6f} {cpu:.6f}\n")


def _clocked(stage: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def clocked(*args: Any, **kwargs: Any) -> Any:
        started, wall, cpu = time.time(), time.perf_counter(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            _write(stage, started, time.perf_counter() - wall, time.thread_time() - cpu)

    return clocked


def _wrap(owner: Any, name: str, stage: str) -> None:
    setattr(owner, name, _clocked(stage, getattr(owner, name)))


def install_api() -> None:
    from rlm_api.routes import inputs
    from rlm_shared import contexts

    _wrap(inputs, "request_data", "request receipt")
    _wrap(contexts, "dedupe_key", "hashing")
    _wrap(contexts, "store_context", "storing")
    from rlm_api.routes import executions, sessions

    for module in (executions, sessions):  # they bound the name at import
        module.store_context = contexts.store_context


def install_workers() -> None:
    from rlm_shared.trace_sink import SqlTraceSink
    from rlm_worker import runner, tasks
    from rlm_worker.dispatchers import CeleryDispatcher

    _wrap(runner, "load_context", "root's load")
    _wrap(runner.StoppableSandboxes, "__call__", "REPL start")
    _wrap(runner, "_store_result", "final write")
    _wrap(CeleryDispatcher, "_send", "publish")
    _wrap(CeleryDispatcher, "run_llm_calls", "fan-out")
    _wrap(tasks, "execute_llm_calls", "leaf batch")
    _wrap(SqlTraceSink, "_upsert_nodes", "trace writes")


def api_app() -> Any:
    """gunicorn's app for a clocked API: `gunicorn 'bench.stage_clock:api_app()'`."""
    from rlm_api import create_app

    app = create_app()
    install_api()
    return app


def stage_totals(folder: Path, since: float = 0.0) -> dict[str, dict[str, float]]:
    """Per stage: calls, summed wall and CPU seconds, and the span from its first start to its last
    end (stages that overlap, like the leaf batches on four workers, take less wall than their sum)."""
    totals: dict[str, dict[str, float]] = defaultdict(
        lambda: {"calls": 0, "wall": 0.0, "cpu": 0.0, "first": float("inf"), "last": 0.0}
    )
    for path in folder.glob("*.txt"):
        for line in path.read_text().splitlines():
            stage, started, wall, cpu = line.split(" ")
            begin = float(started)
            if begin < since:
                continue
            t = totals[stage.replace("_", " ")]
            t["calls"] += 1
            t["wall"] += float(wall)
            t["cpu"] += float(cpu)
            t["first"] = min(t["first"], begin)
            t["last"] = max(t["last"], begin + float(wall))
    for t in totals.values():
        t["span"] = t["last"] - t["first"]
    return dict(totals)


if os.environ.get(FOLDER_ENV) and "celery" in " ".join(sys.argv[:3]):
    install_workers()
