"""Eval runs and their items in the database: create them, score items whose execution finished,
and write the report once every item has.

Scoring needs no waiting task: an item is scored when its execution is seen finished (the CLI
after its runs, the API on `GET /api/evals/<id>` and the dashboard page), and scoring is pure,
so scoring twice gives the same number.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from rlm_api.database import db
from rlm_api.evals.scorers import score
from rlm_api.evals.submissions import Submission, store_execution
from rlm_shared.models import EvalItem, EvalRun, Execution, ModelCallCache, TraceNode
from rlm_worker.engine.types import utcnow


def cache_saved_usd() -> float:
    """Everything the model call cache has saved so far (a run's saving is the difference)."""
    return float(db.session.scalar(sa.select(sa.func.coalesce(sa.func.sum(ModelCallCache.saved_usd), 0.0))))


def create_run(name: str, spec: dict[str, Any], submissions: list[Submission], owner: str | None) -> EvalRun:
    """The run, one queued execution and one item per submission, committed together."""
    spec = {**spec, "cache_saved_usd_at_start": cache_saved_usd()}  # the run's saving is the difference
    run = EvalRun(name=name, status="running", spec=spec, owner=owner)
    db.session.add(run)
    db.session.flush()
    for seq, s in enumerate(submissions):
        db.session.add(
            EvalItem(
                eval_run_id=run.id,
                seq=seq,
                config=s.config,
                baseline=s.baseline,
                task=s.item.task,
                item_id=s.item.id,
                size=s.item.size,
                scorer=s.item.scorer,
                answers=list(s.item.answers),
                execution_id=store_execution(s, owner),
                result={
                    "kind": s.item.kind,
                    "question": s.item.question,
                    "input_chars": len(s.context),
                    "fingerprint": s.item.fingerprint(),
                },
            )
        )
    db.session.commit()
    return run


def mark_failed(execution_id: str, error: str) -> None:
    """Record an execution failed outside the engine (it never started), unless it ended."""
    db.session.rollback()
    db.session.execute(
        sa.update(Execution)
        .where(Execution.id == execution_id, Execution.status.in_(("queued", "running")))
        .values(status="failed", error=error, finished_at=utcnow())
    )
    db.session.commit()


def run_items(run_id: str) -> list[EvalItem]:
    return list(
        db.session.scalars(sa.select(EvalItem).where(EvalItem.eval_run_id == run_id).order_by(EvalItem.seq))
    )


def _depths(execution_ids: list[str]) -> dict[str, int]:
    rows = db.session.execute(
        sa.select(TraceNode.execution_id, sa.func.max(TraceNode.depth))
        .where(TraceNode.execution_id.in_(execution_ids))
        .group_by(TraceNode.execution_id)
    )
    return {execution_id: int(depth or 0) for execution_id, depth in rows}


def outcome(execution: Execution, depth: int) -> dict[str, Any]:
    """What the report needs of a finished execution."""
    return {
        "status": execution.status,
        "answer": execution.final_answer,
        "error": execution.error or execution.guard_hit,
        "input_tokens": execution.total_input_tokens,
        "output_tokens": execution.total_output_tokens,
        "cost_usd": execution.total_cost_usd,
        "seconds": execution.duration_seconds,
        "sub_calls": execution.sub_calls,
        "llm_calls": execution.llm_calls,
        "iterations": execution.iterations,
        "depth": depth,
    }


def refresh(run: EvalRun) -> EvalRun:
    """Score the items whose execution finished; when all have, write the report."""
    if run.status != "running":
        return run
    items = run_items(run.id)
    pending = [i for i in items if i.score is None and i.execution_id]
    executions = {
        e.id: e
        for e in db.session.scalars(
            sa.select(Execution).where(Execution.id.in_([i.execution_id for i in pending]))
        )
    }
    finished = [
        i for i in pending if executions.get(i.execution_id) and executions[i.execution_id].is_finished
    ]
    depths = _depths([i.execution_id for i in finished]) if finished else {}
    for item in finished:
        execution = executions[item.execution_id]
        result = outcome(execution, depths.get(execution.id, 0))
        answer = result["answer"] if execution.status == "succeeded" else None
        if item.baseline and answer and answer.startswith("Error: "):
            # The base model's one call failed (e.g. over its window): a failure, not an answer.
            result.update(status="failed", error=answer, answer=None)
            answer = None
        item.score = score(item.scorer, answer, item.answers)
        item.result = {**(item.result or {}), **result}
    for item in pending:  # an execution deleted under the run counts as failed
        if item.execution_id not in executions and item.score is None:
            item.score, item.result = 0.0, {**(item.result or {}), "status": "deleted"}
    if all(i.score is not None or not i.execution_id for i in items):
        from rlm_api.evals.report import build_report

        saved = cache_saved_usd() - float(run.spec.get("cache_saved_usd_at_start", 0.0))
        run.report = build_report(run, items, cache_saved_usd=saved)
        run.status = "succeeded"
        run.finished_at = utcnow()
    db.session.commit()
    return run
