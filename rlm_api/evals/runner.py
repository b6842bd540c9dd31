"""Run an eval: make its items, store one execution per item and configuration (and per base
model's baseline), hand them to whatever runs executions, then score what finished.

Embedded (`rlm eval`): this process runs the executions on a few threads, exactly as `rlm run`
runs one. On the cluster (`POST /api/evals`): each goes to the `rlm.root` queue like any
`POST /api/execute`, and the run is scored as its executions finish (`store.refresh`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from flask import Flask

from rlm_api.evals import store
from rlm_api.evals.configs import EvalSpec
from rlm_api.evals.submissions import build_items, check_models, plan_submissions
from rlm_api.evals.tasks import TaskError, generators
from rlm_shared.models import EvalRun


def start(settings: Any, spec: EvalSpec, base: Path | None = None, owner: str | None = None) -> EvalRun:
    """Make the items, check every model, store the run and its queued executions (app context).
    Raises TaskError for bad tasks and ModelRefused for a model that may not be called."""
    generated = [t for t in spec.tasks or [] if t in generators()]
    largest = max(spec.sizes or [0])
    if generated and largest > settings.max_context_size:  # refused before anything is generated
        raise TaskError(
            f"size {largest:,} is over MAX_CONTEXT_SIZE ({settings.max_context_size:,} characters)"
        )
    items = build_items(spec, base)
    submissions = plan_submissions(settings, spec, items)
    check_models(settings, submissions)
    name = spec.name or f"{spec.suite or ','.join(spec.tasks or []) or 'tasks'} (seed {spec.seed})"
    return store.create_run(name, spec.model_dump(mode="json"), submissions, owner)


def launch(run: EvalRun) -> None:
    """Hand every execution of the run to the cluster (or to embedded threads, in `rlm serve`)."""
    from rlm_api.launch import launch_execution

    for item in store.run_items(run.id):
        if item.execution_id:
            launch_execution(item.execution_id)


def models_called(run_id: str) -> set[str]:
    """The root and sub-models the run's executions name (app context)."""
    import sqlalchemy as sa

    from rlm_shared.models import EvalItem, Execution

    rows = store.db.session.execute(
        sa.select(Execution.root_model, Execution.sub_model)
        .join(EvalItem, EvalItem.execution_id == Execution.id)
        .where(EvalItem.eval_run_id == run_id)
        .distinct()
    )
    return {model for row in rows for model in row}


def run_here(
    app: Flask, run_id: str, parallel: int = 1, on_done: Callable[[int, int], None] | None = None
) -> None:
    """Run the run's executions in this process, `parallel` at a time, then score them."""
    from rlm_api.embedded import run_embedded

    with app.app_context():
        ids = [i.execution_id for i in store.run_items(run_id) if i.execution_id]
    done = 0

    def one(execution_id: str) -> None:
        nonlocal done
        try:
            run_embedded(app, execution_id)
        except Exception as exc:  # the runner records engine failures; this is anything before
            with app.app_context():
                store.mark_failed(execution_id, f"internal error: {type(exc).__name__}: {exc}")
        done += 1
        if on_done:
            on_done(done, len(ids))

    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="rlm-eval") as pool:
        list(pool.map(one, ids))
    with app.app_context():
        run = store.db.session.get(EvalRun, run_id)
        assert run is not None
        store.refresh(run)
