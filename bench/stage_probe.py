"""Where one sub-call's round trip goes: timestamps at each stage, for benchmark 2's breakdown.

Loaded into the bench's Celery workers with `celery worker -I bench.stage_probe` only when
`RLM_BENCH_STAMPS` names a folder (a separate run from the headline figures: writing a stamp costs
a few microseconds). It changes no behaviour: Celery's own signals mark publish, task start and
task end (after the result is stored), and thin wrappers around three public methods mark the
dispatcher, the model call and the trace write. Each process appends `<epoch seconds> <stage>`
lines to `<folder>/<pid>.txt`; `stage_medians` turns the files of a run of sequential calls (one
call in flight at a time, so time order is call order) into the median of each stage.
"""

from __future__ import annotations

import functools
import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FOLDER_ENV = "RLM_BENCH_STAMPS"

#: The stages in the order one sub-call passes them; a cycle starts at the first.
ORDER = (
    "dispatch",  # root: the dispatcher is handed the call
    "publish",  # root: Celery starts publishing the task message
    "task start",  # llm worker: the task body is about to run
    "model start",  # llm worker: the model client is called
    "model end",
    "trace start",  # llm worker: the trace sink is called
    "trace end",
    "task end",  # llm worker: the result is stored in the backend (Celery's task_postrun)
    "result back",  # root: the dispatcher returns the outcome
)
#: What each interval between consecutive stages is, for the table.
SEGMENTS = {
    ("dispatch", "publish"): "root: calls built, result subscription",
    ("publish", "task start"): "Celery: publish, delivery, hand-off to a pool thread",
    ("task start", "model start"): "leaf: execution status read (Postgres), setup",
    ("model start", "model end"): "model call (litellm, through our client)",
    ("model end", "trace start"): "leaf: outcome",
    ("trace start", "trace end"): "trace row written (Postgres)",
    ("trace end", "task end"): "Celery: result stored (Redis)",
    ("task end", "result back"): "Celery: result to the root (pub/sub), root bookkeeping",
}

_lock = threading.Lock()
_file: Any = None


def stamp(stage: str) -> None:
    global _file
    line = f"{time.time():.6f} {stage}\n"
    with _lock:
        if _file is None:
            _file = open(Path(os.environ[FOLDER_ENV]) / f"{os.getpid()}.txt", "a", buffering=1)  # noqa: SIM115
        _file.write(line)


def _wrap(owner: type, name: str, before: str, after: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    def stamped(*args: Any, **kwargs: Any) -> Any:
        stamp(before)
        try:
            return original(*args, **kwargs)
        finally:
            stamp(after)

    setattr(owner, name, stamped)


def install() -> None:
    from celery.signals import before_task_publish, task_postrun, task_prerun

    from rlm_shared.queues import LLM_CALLS_TASK
    from rlm_shared.trace_sink import SqlTraceSink
    from rlm_worker.dispatchers import CeleryDispatcher
    from rlm_worker.engine.llm import LiteLLMClient

    def on_publish(sender: Any = None, **_: Any) -> None:
        if sender == LLM_CALLS_TASK:
            stamp("publish")

    def on_prerun(task: Any = None, **_: Any) -> None:
        if task is not None and task.name == LLM_CALLS_TASK:
            stamp("task start")

    def on_postrun(task: Any = None, **_: Any) -> None:
        if task is not None and task.name == LLM_CALLS_TASK:
            stamp("task end")

    before_task_publish.connect(on_publish, weak=False)
    task_prerun.connect(on_prerun, weak=False)
    task_postrun.connect(on_postrun, weak=False)
    _wrap(CeleryDispatcher, "run_llm_calls", "dispatch", "result back")
    _wrap(LiteLLMClient, "complete", "model start", "model end")
    _wrap(SqlTraceSink, "nodes_recorded", "trace start", "trace end")


def stage_medians(
    folder: Path, since: float = 0.0, skip: int = 5
) -> tuple[dict[tuple[str, str], float], float, int]:
    """Median seconds of each segment and of dispatch → result back, over the complete cycles
    stamped after `since` (the first `skip` left out: connections and caches warming up)."""
    events = sorted(
        (float(at), stage)
        for path in folder.glob("*.txt")
        for at, stage in (line.split(" ", 1) for line in path.read_text().splitlines() if line)
    )
    cycles: list[dict[str, float]] = []
    for at, stage in events:
        if at < since:
            continue
        if stage == ORDER[0]:
            cycles.append({})
        if cycles:
            cycles[-1].setdefault(stage, at)
    complete = [c for c in cycles[skip:] if all(s in c for s in ORDER)]
    if not complete:
        raise RuntimeError(f"no complete sub-call among {len(cycles)} stamped in {folder}")
    segments = {pair: statistics.median(c[pair[1]] - c[pair[0]] for c in complete) for pair in SEGMENTS}
    total = statistics.median(c[ORDER[-1]] - c[ORDER[0]] for c in complete)
    return segments, total, len(complete)


if os.environ.get(FOLDER_ENV):
    install()
