"""Evals over HTTP: `POST /api/evals` submits a suite as ordinary executions (202), `GET
/api/evals/<id>` scores what finished and answers the status and, once all have, the report."""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask import Response, current_app

from rlm_api.auth import current_owner, owned
from rlm_api.database import db
from rlm_api.errors import APIError, not_found
from rlm_api.evals import plot, runner, store
from rlm_api.evals.report import markdown
from rlm_api.evals.schemas import EvalRequest
from rlm_api.evals.tasks import TaskError
from rlm_api.model_checks import ModelRefused
from rlm_api.routes import bp
from rlm_api.routes.inputs import parse_body
from rlm_api.schemas import ID_PATTERN
from rlm_shared.models import EvalRun, Execution
from rlm_worker.engine.types import utcnow


def eval_links(eval_id: str) -> dict[str, str]:
    return {
        "self": f"/api/evals/{eval_id}",
        "report_markdown": f"/api/evals/{eval_id}/report.md",
        "plot_svg": f"/api/evals/{eval_id}/plot.svg",
        "plot_png": f"/api/evals/{eval_id}/plot.png",
        "dashboard": f"/evals/{eval_id}",
    }


def eval_dict(run: EvalRun, with_report: bool = True) -> dict:
    items = store.run_items(run.id)
    data = {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "executions": len(items),
        "finished": sum(1 for i in items if i.score is not None),
        "spec": {k: v for k, v in run.spec.items() if k not in ("cache_saved_usd_at_start", "user_tasks")},
        "links": eval_links(run.id),
    }
    data["report"] = run.report if with_report else None
    return data


def get_owned_eval(eval_id: str) -> EvalRun:
    run = None
    if re.fullmatch(ID_PATTERN, eval_id):
        run = db.session.scalar(owned(sa.select(EvalRun).where(EvalRun.id == eval_id), EvalRun))
    if run is None:
        raise not_found("eval", eval_id)
    return run


def _fail_unlaunched(run: EvalRun) -> None:
    ids = [i.execution_id for i in store.run_items(run.id) if i.execution_id]
    db.session.execute(
        sa.update(Execution)
        .where(Execution.id.in_(ids), Execution.status == "queued")
        .values(status="failed", error="could not be enqueued", finished_at=utcnow())
    )
    run.status, run.error, run.finished_at = "failed", "could not be enqueued", utcnow()
    db.session.commit()


@bp.post("/evals")
def create_eval():
    body = parse_body(EvalRequest)
    try:
        run = runner.start(current_app.config["RLM_SETTINGS"], body, owner=current_owner())
    except TaskError as exc:
        raise APIError(422, "invalid_eval", str(exc)) from None
    except ModelRefused as exc:
        raise APIError(422, exc.code, exc.message, [{"field": exc.field, "message": exc.message}]) from None
    try:
        runner.launch(run)
    except Exception:
        _fail_unlaunched(run)
        raise APIError(
            503, "broker_unavailable", "the eval's executions could not be enqueued; try again"
        ) from None
    return eval_dict(run, with_report=False), 202, {"Location": eval_links(run.id)["self"]}


@bp.get("/evals")
def list_evals():
    runs = db.session.scalars(
        owned(sa.select(EvalRun), EvalRun).order_by(EvalRun.created_at.desc()).limit(100)
    )
    return {"items": [eval_dict(r, with_report=False) for r in runs]}


@bp.get("/evals/<eval_id>")
def get_eval(eval_id: str):
    return eval_dict(store.refresh(get_owned_eval(eval_id)))


def _report_now(eval_id: str) -> dict:
    """The report: the final one, or, while items still run, one over the items scored so far."""
    from rlm_api.evals.report import build_report

    run = store.refresh(get_owned_eval(eval_id))
    if run.report is not None:
        return run.report
    return build_report(run, [i for i in store.run_items(run.id) if i.score is not None])


@bp.get("/evals/<eval_id>/report.md")
def eval_markdown(eval_id: str):
    return Response(markdown(_report_now(eval_id)), mimetype="text/markdown")


@bp.get("/evals/<eval_id>/plot.svg")
def eval_plot_svg(eval_id: str):
    return Response(plot.render(_report_now(eval_id), "svg"), mimetype="image/svg+xml")


@bp.get("/evals/<eval_id>/plot.png")
def eval_plot_png(eval_id: str):
    return Response(plot.render(_report_now(eval_id), "png"), mimetype="image/png")
