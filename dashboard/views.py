"""Dashboard views: the executions list and one execution's tree."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, render_template

from rlm_api.models import Execution, TraceNode, db

bp = Blueprint("dashboard", __name__, template_folder="templates", static_folder="static", static_url_path="/static/dashboard")


@bp.get("/")
@bp.get("/executions")
def executions():
    rows = db.session.scalars(sa.select(Execution).order_by(Execution.created_at.desc()).limit(100)).all()
    return render_template("executions.html", executions=rows)


@bp.get("/executions/<execution_id>")
def execution(execution_id: str):
    row = db.session.get(Execution, execution_id)
    if row is None:
        abort(404)
    nodes = db.session.scalars(
        sa.select(TraceNode).where(TraceNode.execution_id == execution_id).order_by(TraceNode.path)
    ).all()
    return render_template("execution.html", execution=row, nodes=nodes)
