"""From an eval spec to the executions to run: each configuration's plan (as `rlm run` and
`POST /api/execute` make it), every item under it, and each base model's baseline.

Executions are stored here as `POST /api/execute` stores them (context once by sha256, a queued
row), so the root workers, the trace and the dashboard treat them like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlm_api.evals.baseline import BASELINE_PROGRAM, truncate, window_tokens
from rlm_api.evals.configs import MAX_EXECUTIONS, EvalConfig, EvalSpec
from rlm_api.evals.tasks import TaskError, TaskItem, fixed_sets, generators
from rlm_api.evals.tasks.user import item_from_line, load_jsonl
from rlm_api.planning import RunPlan, plan_run


@dataclass(frozen=True)
class Submission:
    """One execution to run: an item under a configuration, or under a base model alone."""

    config: str
    baseline: bool
    item: TaskItem
    plan: RunPlan
    options: dict[str, Any]
    context: str


def build_items(spec: EvalSpec, base: Path | None = None) -> list[TaskItem]:
    """Every item of the spec, in a fixed order: generated tasks by size, then fixed sets, then
    task files (relative to `base`)."""
    items: list[TaskItem] = []
    gens, fixed = generators(), fixed_sets()
    for task in spec.tasks or []:
        if task in gens:
            for size in spec.sizes or []:
                items.extend(gens[task](size, spec.seed, spec.items or 1))
        else:
            items.extend(fixed[task]())
    for name in spec.task_files:
        path = Path(name) if base is None else base / name
        items.extend(load_jsonl(path))
    for number, line in enumerate(spec.user_tasks, start=1):
        items.append(item_from_line(line, "user", None, where=f"user_tasks[{number - 1}]"))
    if not items:
        raise TaskError("the eval has no items: name tasks, a suite or a task file")
    return items


def config_plan(settings: Any, config: EvalConfig) -> tuple[RunPlan, dict[str, Any]]:
    """The plan and execution options of a configuration: the settings' defaults, the plan's
    (the offline plan when nothing is chosen and no provider is reachable), then its limits."""
    from rlm_worker.engine.options import ExecutionOptions

    plan = plan_run(
        settings,
        config.model,
        config.sub_model,
        config.strategy,
        config.root_code,
        chunk_size_chosen=config.chunk_size is not None,
    )
    options = ExecutionOptions(**{**settings.execution_defaults(), **plan.options, **config.limits()})
    return plan, options.model_dump()


def base_model(plan: RunPlan) -> str:
    """The model a configuration's baseline calls alone: the root model, or the sub-model when a
    fixed program plays the root."""
    return plan.sub_model if plan.root_label else plan.root_model


def baseline_plan(settings: Any, model: str, config: EvalConfig) -> tuple[RunPlan, dict[str, Any]]:
    from rlm_worker.engine.options import ExecutionOptions

    options = {"root_code": BASELINE_PROGRAM, "max_iterations": 1}
    if config.timeout_seconds:
        options["timeout_seconds"] = config.timeout_seconds
    plan = RunPlan("(baseline)", model, options)
    return plan, ExecutionOptions(**{**settings.execution_defaults(), **options}).model_dump()


def plan_submissions(settings: Any, spec: EvalSpec, items: list[TaskItem]) -> list[Submission]:
    """Every execution of the eval: items under each configuration, then each distinct base
    model's baseline over the truncated inputs."""
    too_big = [i for i in items if i.size > settings.max_context_size]
    if too_big:
        raise TaskError(
            f"item {too_big[0].id} has {too_big[0].size:,} characters; MAX_CONTEXT_SIZE is "
            f"{settings.max_context_size:,}"
        )
    submissions: list[Submission] = []
    baselines: dict[tuple[str, int], EvalConfig] = {}
    for index, config in enumerate(spec.configs):
        plan, options = config_plan(settings, config)
        label = config.label(index)
        if label == "default":  # nothing chosen: say what the environment's plan is
            label = f"default: {plan.root_label or plan.root_model}, sub-calls {plan.sub_model}"
        for item in items:
            submissions.append(Submission(label, False, item, plan, options, item.input))
        if spec.baseline:
            model = base_model(plan)
            baselines.setdefault((model, window_tokens(model, config.window_tokens)), config)
    for (model, window), config in baselines.items():
        plan, options = baseline_plan(settings, model, config)
        for item in items:
            context = truncate(item.input, window, item.question, model)
            submissions.append(Submission(f"base model alone: {model}", True, item, plan, options, context))
    if len(submissions) > MAX_EXECUTIONS:
        raise TaskError(
            f"the eval would run {len(submissions):,} executions; at most {MAX_EXECUTIONS:,} "
            "(fewer sizes, items or configurations)"
        )
    return submissions


def check_models(settings: Any, submissions: list[Submission]) -> None:
    """Every model the eval will call, checked before anything is stored (raises ModelRefused)."""
    from rlm_api.model_checks import check_models as check

    seen = set()
    for s in submissions:
        root = None if s.plan.root_label or s.baseline else s.plan.root_model
        if (root, s.plan.sub_model) not in seen:
            seen.add((root, s.plan.sub_model))
            check(settings, model=root, sub_model=s.plan.sub_model)


def store_execution(submission: Submission, owner: str | None = None) -> str:
    """Store the context and a queued execution (inside an app context); return its id."""
    from rlm_api.database import db
    from rlm_shared.contexts import store_context
    from rlm_shared.models import Execution

    plan = submission.plan
    execution = Execution(
        context_id=store_context(submission.context, owner=owner).id,
        user_query=submission.item.question,
        root_model=plan.root_model,
        sub_model=plan.sub_model,
        options=submission.options,
        offline=plan.offline,
        status="queued",
        owner=owner,
    )
    db.session.add(execution)
    db.session.flush()
    return execution.id
