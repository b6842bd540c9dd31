"""Eval pages: the runs, and one run's table (each configuration beside the base model alone),
its plot (the SVG, and the PNG to download) and every item linked to its execution's trace.

Reading a run scores the items whose execution finished since (`rlm_api.evals.store.refresh`),
so a page of a cluster run fills in as the workers finish."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Response, abort, render_template

from dashboard.views import bp, visible
from rlm_api.database import db
from rlm_api.evals import plot, store
from rlm_api.evals.report import item_dict
from rlm_shared.models import EvalRun

#: How often a running eval's page reloads, seconds.
REFRESH_SECONDS = 5


def _get_run(eval_id: str) -> EvalRun:
    run = db.session.get(EvalRun, eval_id)
    if run is None or not visible(run):
        abort(404, description=f"There is no eval {eval_id}.")
    return run


@bp.get("/evals")
def evals():
    runs = [
        r
        for r in db.session.scalars(sa.select(EvalRun).order_by(EvalRun.created_at.desc()).limit(100))
        if visible(r)
    ]
    return render_template("evals.html", runs=runs)


@bp.get("/evals/<eval_id>")
def eval_run(eval_id: str):
    run = store.refresh(_get_run(eval_id))
    items = [item_dict(i) for i in store.run_items(run.id)]
    report = run.report
    baselines = {(r["task"], r["size"]): r for r in (report or {}).get("rows", []) if r["baseline"]}
    return render_template(
        "eval.html",
        run=run,
        report=report,
        items=items,
        baselines=baselines,
        done=sum(1 for i in items if i["score"] is not None),
        refresh=REFRESH_SECONDS if run.status == "running" else None,
    )


@bp.get("/evals/<eval_id>/plot.<fmt>")
def eval_plot(eval_id: str, fmt: str):
    run = _get_run(eval_id)
    if fmt not in ("svg", "png") or run.report is None:
        abort(404, description=f"Eval {eval_id} has no {fmt} plot (yet).")
    mimetype = "image/svg+xml" if fmt == "svg" else "image/png"
    headers = {} if fmt == "svg" else {"Content-Disposition": f"attachment; filename=eval-{run.id[:8]}.png"}
    return Response(plot.render(run.report, fmt), mimetype=mimetype, headers=headers)
