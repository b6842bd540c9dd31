"""The JSON API blueprint. Views are thin: validate, call one function, return a dict."""

from __future__ import annotations

import time
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Blueprint, current_app, request
from pydantic import BaseModel, ValidationError

from rlm_api.contexts import context_size, store_context
from rlm_api.errors import APIError
from rlm_api.launch import launch_execution
from rlm_api.models import Context, Execution, Session, TraceNode, db
from rlm_api.schemas import ExecuteRequest, SessionCreate
from rlm_api.serializers import execution_dict, node_dict, session_dict
from rlm_worker.engine.options import ExecutionOptions

bp = Blueprint("api", __name__, url_prefix="/api")
ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_body(schema: type[ModelT]) -> ModelT:
    if not request.is_json:
        raise APIError(415, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
    data = request.get_json(silent=True)
    if data is None:
        raise APIError(400, "malformed_json", "the request body is not valid JSON")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        missing = [d["field"] for d, err in zip(details, exc.errors(), strict=True) if err["type"] == "missing"]
        if missing:
            raise APIError(400, "missing_field", f"missing field: {', '.join(missing)}", details) from None
        raise APIError(422, "invalid_field", f"invalid {details[0]['field']}: {details[0]['message']}", details) from None


def _settings():
    return current_app.config["RLM_SETTINGS"]


def _check_context_size(value: Any) -> None:
    limit = _settings().max_context_size
    size = context_size(value)
    if size > limit:
        raise APIError(413, "context_too_large", f"context has {size:,} characters; the limit is {limit:,}")


def _default_options(overrides: ExecutionOptions) -> dict[str, Any]:
    """Settings give the defaults; what the request set explicitly wins."""
    s = _settings()
    defaults = {
        "max_iterations": s.max_iterations,
        "max_recursion_depth": s.max_recursion_depth,
        "timeout_seconds": s.execution_timeout,
        "chunk_size": s.default_chunk_size,
    }
    return ExecutionOptions(**{**defaults, **overrides.model_dump(exclude_unset=True)}).model_dump()


@bp.post("/sessions")
def create_session():
    body = parse_body(SessionCreate)
    context_id = None
    size = None
    if body.context is not None:
        _check_context_size(body.context)
        ctx = store_context(body.context)
        context_id, size = ctx.id, ctx.size_chars
    session = Session(name=body.name, context_id=context_id, memory=body.memory, variables={})
    db.session.add(session)
    db.session.commit()
    return session_dict(session, size), 201


@bp.post("/execute")
def execute():
    body = parse_body(ExecuteRequest)
    settings = _settings()
    session = None
    if body.session_id is not None:
        session = db.session.get(Session, body.session_id)
        if session is None:
            raise APIError(404, "not_found", f"session {body.session_id} not found")
    if body.context is not None:
        _check_context_size(body.context)
        context_id = store_context(body.context).id
    elif session is not None and session.context_id:
        context_id = session.context_id
    else:
        raise APIError(400, "missing_field", "missing field: context (the session has none)")
    root_model = body.model or settings.default_model
    execution = Execution(
        session_id=session.id if session else None,
        context_id=context_id,
        user_query=body.user_query,
        root_model=root_model,
        sub_model=body.sub_model or settings.sub_model or root_model,
        options=_default_options(body.options),
        status="queued",
    )
    db.session.add(execution)
    db.session.commit()
    launch_execution(execution.id)
    if body.wait:
        finished = _wait_for(execution.id, body.wait)
        if finished is not None:
            return execution_dict(finished), 200
    return {"execution_id": execution.id, "status": "queued", "links": execution_dict(execution)["links"]}, 202


def _wait_for(execution_id: str, seconds: float) -> Execution | None:
    deadline = time.monotonic() + seconds
    delay = 0.05
    while time.monotonic() < deadline:
        db.session.expire_all()
        execution = db.session.get(Execution, execution_id)
        if execution is not None and execution.is_finished:
            return execution
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.5)
    return None


def _get_execution(execution_id: str) -> Execution:
    execution = db.session.get(Execution, execution_id)
    if execution is None:
        raise APIError(404, "not_found", f"execution {execution_id} not found")
    return execution


@bp.get("/executions/<execution_id>")
def get_execution(execution_id: str):
    return execution_dict(_get_execution(execution_id))


@bp.get("/executions/<execution_id>/trace")
def get_trace(execution_id: str):
    _get_execution(execution_id)
    nodes = db.session.scalars(
        sa.select(TraceNode).where(TraceNode.execution_id == execution_id).order_by(TraceNode.path)
    )
    return {"execution_id": execution_id, "nodes": [node_dict(n) for n in nodes]}


@bp.get("/sessions/<session_id>")
def get_session(session_id: str):
    session = db.session.get(Session, session_id)
    if session is None:
        raise APIError(404, "not_found", f"session {session_id} not found")
    size = db.session.scalar(sa.select(Context.size_chars).where(Context.id == session.context_id))
    return session_dict(session, size)
