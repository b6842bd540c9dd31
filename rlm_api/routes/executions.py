"""Executions: submit (never waiting on a worker unless asked to), list, read, trace, stream, cancel."""

from __future__ import annotations

import logging
import re
import time

import sqlalchemy as sa
from flask import Response, current_app, request, stream_with_context

from rlm_api.agents import agent_id_from_headers
from rlm_api.auth import current_owner, owned
from rlm_api.ceilings import over_ceiling
from rlm_api.database import db
from rlm_api.errors import APIError, not_found
from rlm_api.events import execution_events
from rlm_api.launch import announce_cancelled, launch_execution
from rlm_api.model_checks import ModelRefused, check_models
from rlm_api.planning import RunPlan, plan_run
from rlm_api.quota import ACTIVE_STATUSES, QUOTA_RETRY_SECONDS, QuotaExceeded, check_active_quota
from rlm_api.routes import bp
from rlm_api.routes.inputs import check_context_size, input_skipped, parse_body, parse_query
from rlm_api.routes.pages import page
from rlm_api.routes.sessions import get_owned_session
from rlm_api.schemas import ID_PATTERN, MAX_WAIT_SECONDS, ExecuteRequest, ExecutionQuery
from rlm_api.serializers import execution_dict, execution_links, node_dict
from rlm_api.streams import take_slot, try_slot
from rlm_shared.contexts import store_context
from rlm_shared.live_totals import trace_totals_many
from rlm_shared.models import Execution, Session, TraceNode
from rlm_worker.engine.options import ExecutionOptions
from rlm_worker.engine.types import utcnow

log = logging.getLogger("rlm.api")


def _settings():
    return current_app.config["RLM_SETTINGS"]


def planned(body: ExecuteRequest) -> tuple[RunPlan, dict]:
    """The plan `rlm run` would make for the same choices (the offline plan included), and the
    options: the settings' defaults, then the plan's, then what the request set explicitly."""
    settings = _settings()
    chosen = body.options.model_dump(exclude_unset=True)
    too_high = over_ceiling(settings, chosen)
    if too_high:
        field, message = f"options.{too_high[0]}", too_high[1]
        raise APIError(422, "invalid_field", f"invalid {field}: {message}", [{"field": field, "message": message}])
    plan = plan_run(
        settings,
        body.model,
        body.sub_model,
        body.options.strategy,
        body.options.root_code,
        chunk_size_chosen="chunk_size" in chosen,
    )
    options = ExecutionOptions(**{**settings.execution_defaults(), **plan.options, **chosen}).model_dump()
    refusal = settings.concurrent_subcalls_refusal(options["max_concurrent_subcalls"])
    if refusal:
        field = "options.max_concurrent_subcalls"
        raise APIError(
            422, "invalid_field", f"invalid {field}: {refusal}", [{"field": field, "message": refusal}]
        )
    return plan, options


def get_owned_execution(execution_id: str) -> Execution:
    execution = None
    if re.fullmatch(ID_PATTERN, execution_id):
        execution = db.session.scalar(
            owned(sa.select(Execution).where(Execution.id == execution_id), Execution)
        )
    if execution is None:
        raise not_found("execution", execution_id)
    return execution


def _check_quota() -> None:
    try:
        check_active_quota()
    except QuotaExceeded as exc:
        raise APIError(
            429, "quota_exceeded", str(exc), headers={"Retry-After": str(QUOTA_RETRY_SECONDS)}
        ) from None


def _check_models(settings, root_model: str | None, sub_model: str, root_is_a_model: bool = True) -> None:
    """422 naming the model and the reason (MODEL_ALLOWLIST, a missing key) before anything is stored."""
    try:
        check_models(settings, root_is_a_model=root_is_a_model, model=root_model, sub_model=sub_model)
    except ModelRefused as exc:
        raise APIError(422, exc.code, exc.message, [{"field": exc.field, "message": exc.message}]) from None


def _launch(execution: Execution) -> None:
    """Hand it over; if the broker refuses, the execution is failed rather than left queued forever."""
    try:
        launch_execution(execution.id)
    except Exception as exc:
        log.error("execution %s could not be enqueued: %s", execution.id, type(exc).__name__)
        execution.status, execution.error, execution.finished_at = "failed", "could not be enqueued", utcnow()
        db.session.commit()
        raise APIError(503, "broker_unavailable", "the execution could not be enqueued; try again") from None


def _wait_for(execution_id: str, seconds: float) -> Execution:
    """The execution once finished, or as it stands when `seconds` are up (its real status)."""
    deadline = time.monotonic() + seconds
    delay = 0.05
    while True:
        db.session.rollback()  # a fresh snapshot each look
        execution = db.session.get(Execution, execution_id)
        assert execution is not None  # stored by this request; deleting it cascades from nowhere
        remaining = deadline - time.monotonic()
        if execution.is_finished or remaining <= 0:
            return execution
        time.sleep(min(delay, remaining))
        delay = min(delay * 1.5, 0.5)


def submitted_dict(execution: Execution) -> dict:
    """The submission's answer: the execution record (`id`) with `execution_id`, the name the first
    version of the API used, kept as an alias of `id` for clients that read it."""
    return {**execution_dict(execution), "execution_id": execution.id}


def submit_execution(
    body: ExecuteRequest,
    agent_id: str | None = None,
    context_id: str | None = None,
    skipped: list[dict[str, str]] | None = None,
) -> Execution:
    """Check, store and hand over one execution as `POST /api/execute` does. The MCP tools and the
    OpenAI-compatible endpoint call it too, so every way in refuses the same things (models off the allow-list, another token's
    session, the quota). `context_id` names a context the caller may already read."""
    session: Session | None = get_owned_session(body.session_id) if body.session_id else None
    plan, options = planned(body)
    options["skipped"] = skipped or []  # a record the server makes, whatever the request said
    # A fixed root program calls no root model: only a model that will be called is checked.
    _check_models(
        _settings(),
        None if plan.root_label and not body.model else plan.root_model,
        plan.sub_model,
        root_is_a_model=not plan.root_label,
    )
    if body.context is not None:
        check_context_size(body.context)
        context_id = store_context(body.context, owner=current_owner()).id
    elif context_id is None and session is not None and session.context_id:
        context_id = session.context_id
    elif context_id is None:
        raise APIError(
            400,
            "missing_field",
            "missing field: context (send a context, or a session_id of a session that has one)",
            [{"field": "context", "message": "Field required"}],
        )
    _check_quota()
    execution = Execution(
        session_id=session.id if session else None,
        context_id=context_id,
        user_query=body.user_query,
        root_model=plan.root_model,
        sub_model=plan.sub_model,
        options=options,
        offline=plan.offline,
        status="queued",
        owner=current_owner(),
        agent_id=agent_id,
    )
    db.session.add(execution)
    db.session.commit()
    _launch(execution)
    return execution


@bp.post("/execute")
def execute():
    agent_id = agent_id_from_headers(request.headers)
    body = parse_body(ExecuteRequest)
    execution = submit_execution(body, agent_id=agent_id, skipped=input_skipped())
    cap = float(current_app.config.get("API_MAX_WAIT_SECONDS", MAX_WAIT_SECONDS))
    held = try_slot() if body.wait else None  # no slot free: answer now rather than hold a thread
    try:
        current = _wait_for(execution.id, min(body.wait or 0.0, cap) if held else 0.0)
    finally:
        if held:
            held.release()
    if current.is_finished and body.wait:
        return submitted_dict(current), 200
    return submitted_dict(current), 202, {"Location": execution_links(execution.id)["self"]}


@bp.get("/executions")
def list_executions():
    query = parse_query(ExecutionQuery)
    stmt = owned(sa.select(Execution), Execution)
    if query.status:
        stmt = stmt.where(Execution.status == query.status)
    if query.session_id:
        stmt = stmt.where(Execution.session_id == query.session_id)
    if query.agent_id:
        stmt = stmt.where(Execution.agent_id == query.agent_id)
    rows, next_cursor = page(stmt, Execution, query.limit, query.cursor)
    live = trace_totals_many(db.session, [e.id for e in rows if not e.is_finished])
    return {"items": [execution_dict(e, live.get(e.id)) for e in rows], "next_cursor": next_cursor}


@bp.get("/executions/<execution_id>")
def get_execution(execution_id: str):
    return execution_dict(get_owned_execution(execution_id))


@bp.get("/executions/<execution_id>/trace")
def get_trace(execution_id: str):
    get_owned_execution(execution_id)
    nodes = db.session.scalars(
        sa.select(TraceNode).where(TraceNode.execution_id == execution_id).order_by(TraceNode.path)
    )
    return {"execution_id": execution_id, "nodes": [node_dict(n) for n in nodes]}


@bp.post("/executions/<execution_id>/cancel")
def cancel_execution(execution_id: str):
    """The worker's engine polls the status, so marking the row `cancelled` stops the whole tree.
    Leaf tasks already queued hear it as a stop notice (embedded mode has none to tell)."""
    execution = get_owned_execution(execution_id)
    changed = db.session.execute(
        sa.update(Execution)
        .where(Execution.id == execution.id, Execution.status.in_(ACTIVE_STATUSES))
        .values(status="cancelled", error="cancelled through the API", finished_at=utcnow())
    ).rowcount
    db.session.commit()
    db.session.refresh(execution)
    if not changed:
        raise APIError(409, "conflict", f"execution {execution.id} already finished: {execution.status}")
    announce_cancelled(execution.id)
    return execution_dict(execution)


@bp.get("/executions/<execution_id>/events")
def execution_events_stream(execution_id: str):
    get_owned_execution(execution_id)
    held = take_slot()  # 429 past the process's or the token's limit of open streams
    db.session.rollback()  # no transaction held open for the stream's life
    config = current_app.config
    stream = execution_events(
        execution_id,
        poll=float(config.get("API_EVENTS_POLL_SECONDS", 0.25)),
        max_seconds=float(config.get("API_EVENTS_MAX_SECONDS", 600)),
    )
    return Response(
        stream_with_context(held.held_while(stream)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
