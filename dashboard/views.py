"""Dashboard pages: executions, one execution's tree, sessions, stats. Views read, then render.

Fragments for htmx (live updates, node details) are the same templates as the full pages' parts,
so every page also reads fine without JavaScript.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.exceptions import NotFound

from dashboard import charts, forms, queries
from dashboard.formatting import FILTERS, count, money
from dashboard.highlight import highlight_python
from dashboard.memory import execution_changes, node_change
from dashboard.tree import build_tree, build_waterfall, cost_breakdown
from rlm_api.agents import MAX_AGENT_ID_LENGTH
from rlm_api.auth import current_owner
from rlm_api.database import db
from rlm_api.launch import dispatch_mode
from rlm_api.passages import PROBE_CHARS
from rlm_shared.live_totals import totals_for
from rlm_shared.models import EXECUTION_STATUSES, Execution, Session
from rlm_shared.strategies import DEFAULT_STRATEGY, STRATEGIES, split_helpers

bp = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static/dashboard",
)
for _name, _filter in FILTERS.items():
    bp.add_app_template_filter(_filter, _name)

#: How often a running execution's page asks for news, in milliseconds.
LIVE_POLL_MS = 1500


@bp.app_context_processor
def _dashboard_globals() -> dict[str, object]:
    settings = current_app.config.get("RLM_SETTINGS")
    # Embedded mode (`rlm serve`) runs no Celery, so there is no Flower to link to.
    flower = getattr(settings, "flower_url", None) if dispatch_mode() == "celery" else None
    return {"flower_url": flower, "statuses": EXECUTION_STATUSES}


@bp.route("/favicon.ico")
def favicon():
    """Browsers ask for it on every page; an SVG answers (no 404 in the log)."""
    return bp.send_static_file("favicon.svg")


@bp.errorhandler(404)
def _not_found(exc: NotFound):
    return render_template("404.html", message=exc.description), 404


def _page_arg() -> int:
    return max(1, request.args.get("page", 1, type=int) or 1)


def _is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


# -- executions ---------------------------------------------------------------------------------
@bp.get("/")
@bp.get("/executions")
def executions():
    status = request.args.get("status") or None
    if status not in EXECUTION_STATUSES:
        status = None
    session_id = request.args.get("session") or None
    agent_id = (request.args.get("agent") or "").strip()[:MAX_AGENT_ID_LENGTH] or None
    page = queries.executions_page(status, session_id, _page_arg(), agent_id=agent_id)
    return render_template(
        "executions.html",
        page=page,
        status=status,
        session_id=session_id,
        agent_id=agent_id,
        sessions=queries.session_names(),
    )


def _get_execution(execution_id: str) -> Execution:
    execution = db.session.get(Execution, execution_id)
    if execution is None or not visible(execution):
        abort(404, description=f"There is no execution {execution_id}.")
    return execution


def _execution_parts(execution: Execution) -> dict[str, object]:
    """Everything the execution page and its live fragment draw, read in a handful of queries."""
    context_id = execution.context_id
    tree = build_tree(
        queries.tree_rows(execution.id),
        place=lambda head, length: queries.passage_place(context_id, head[:PROBE_CHARS], length),
    )
    by_model, by_depth = cost_breakdown(tree)
    session = db.session.get(Session, execution.session_id) if execution.session_id else None
    return {
        "execution": execution,
        # The figures in the header: from the trace while it runs, as the API and SSE show them.
        "totals": totals_for(db.session, execution.id, execution.status, execution),
        "session": session,
        "tree": tree,
        "waterfall": build_waterfall(tree, execution.started_at, execution.finished_at),
        "cost_by_model": by_model,
        "cost_by_depth": by_depth,
        "memory_changes": execution_changes(execution.id),
        "version": queries.tree_version(execution),
        "poll_ms": LIVE_POLL_MS,
    }


@bp.get("/executions/<execution_id>")
def execution(execution_id: str):
    return render_template("execution.html", **_execution_parts(_get_execution(execution_id)))


@bp.get("/executions/<execution_id>/live")
def execution_live(execution_id: str):
    """What changed on a running execution's page: 204 when nothing did (htmx then swaps nothing)."""
    execution = _get_execution(execution_id)
    if request.args.get("v") == queries.tree_version(execution):
        return Response(status=204)
    return render_template("_execution_live.html", **_execution_parts(execution))


@bp.get("/executions/<execution_id>/nodes/<node_id>")
def execution_node(execution_id: str, node_id: str):
    """One node in full; a fragment for htmx, a page of its own for a plain link."""
    execution = _get_execution(execution_id)
    node = queries.node(execution_id, node_id)
    if node is None:
        abort(404, description=f"Execution {execution_id} has no node {node_id}.")
    # A code cell's memory edits are recorded when its iteration finishes.
    memory = node_change(execution_id, [node.id] + ([node.parent_id] if node.kind == "code" else []))
    helpers, program = split_helpers(node.code) if node.code else (None, None)
    context = {
        "execution": execution,
        "node": node,
        "code_html": highlight_python(program) if program else None,
        "helpers_html": highlight_python(helpers) if helpers else None,
        "helpers_lines": helpers.count("\n") if helpers else 0,
        "memory_change": memory,
    }
    template = "_node_detail.html" if _is_htmx() else "node.html"
    return render_template(template, **context)


# -- sessions -----------------------------------------------------------------------------------
@bp.get("/sessions")
def sessions():
    return render_template("sessions.html", page=queries.sessions_page(_page_arg()), form=forms.FormResult())


@bp.post("/sessions")
def create_session():
    result = forms.create_session(request.form, request.files)
    if result.errors:
        page = queries.sessions_page(1)
        return render_template("sessions.html", page=page, form=result), 400
    for item in result.skipped:
        flash(f"Skipped {item['name']}: {item['reason']}")
    return redirect(url_for("dashboard.session", session_id=result.created_id), code=303)


def _get_session(session_id: str) -> Session:
    session = db.session.get(Session, session_id)
    if session is None or not visible(session):
        abort(404, description=f"There is no session {session_id}.")
    return session


def _render_session(session: Session, form: forms.FormResult, status: int = 200):
    variables = {
        name: json.dumps(value, indent=2, default=str)[:5000] for name, value in session.variables.items()
    }
    settings = current_app.config["RLM_SETTINGS"]
    return (
        render_template(
            "session.html",
            session=session,
            context_size=queries.context_size(session.context_id),
            variables=variables,
            strategies=STRATEGIES,
            offline_strategy=DEFAULT_STRATEGY,
            root_model_default=settings.default_model,
            sub_model_default=settings.sub_model or settings.default_model,
            page=queries.executions_page(None, session.id, _page_arg()),
            form=form,
        ),
        status,
    )


@bp.get("/sessions/<session_id>")
def session(session_id: str):
    return _render_session(_get_session(session_id), forms.FormResult())


@bp.post("/sessions/<session_id>/executions")
def start_execution(session_id: str):
    session = _get_session(session_id)
    result = forms.start_execution(session, request.form)
    if result.errors:
        return _render_session(session, result, result.status)
    return redirect(url_for("dashboard.execution", execution_id=result.created_id), code=303)


# -- stats --------------------------------------------------------------------------------------
@bp.get("/stats")
def stats():
    by_status = queries.executions_by_status()
    by_model = queries.usage_by_model()
    by_day = queries.usage_by_day()
    shown = [*EXECUTION_STATUSES[:3], queries.NO_ANSWER, *EXECUTION_STATUSES[3:]]
    status_items = [(s, float(by_status.get(s, 0))) for s in shown]
    return render_template(
        "stats.html",
        totals=queries.totals(),
        by_model=by_model,
        by_day=by_day,
        status_chart=charts.bar_chart(
            "Executions by status", status_items, lambda v: count(v), css=lambda label: f"st-{label.replace(' ', '-')}"
        ),
        model_cost_chart=charts.unless_all_zero(
            charts.bar_chart("Cost by model", [(r.model, float(r.cost or 0)) for r in by_model], money),
            "Every model call so far cost $0 (local or unpriced models).",
        ),
        model_tokens_chart=charts.bar_chart(
            "Tokens by model", [(r.model, float(r.tokens or 0)) for r in by_model], count
        ),
        day_cost_chart=charts.time_chart(
            "Cost by day", [(d.strftime("%m-%d"), cost) for d, _, _, cost in by_day], money
        ),
        day_tokens_chart=charts.time_chart(
            "Tokens by day", [(d.strftime("%m-%d"), float(tokens)) for d, _, tokens, _ in by_day], count
        ),
    )


def visible(row: Execution | Session) -> bool:
    """With tokens configured, a login sees only what its token created (as the API does)."""
    owner = current_owner()
    return owner is None or row.owner == owner
