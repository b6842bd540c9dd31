"""`/v1/chat/completions` and `/v1/models`: RLM Engine for clients that speak the OpenAI chat API.

A chat request becomes one execution through the same path as `POST /api/execute`
(`submit_execution`: the plan, MODEL_ALLOWLIST and key checks, the quota, the tokens' ownership);
`rlm_api.chat_request` says which part of the messages is the context and which the question.
Errors use OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`) so the openai SDK
raises its typed exceptions. Replies carry the execution id (`X-RLM-Execution-Id`, and `rlm` in
the body) so the trace can be opened. Failures of a started execution say `x-should-retry: false`:
the SDK would otherwise retry a 5xx, running the whole execution again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context
from werkzeug.exceptions import HTTPException

from rlm_api.auth import current_owner, owned
from rlm_api.chat_request import ChatCompletionRequest, ChatRequestError, read_messages, resolve_model
from rlm_api.database import db
from rlm_api.errors import APIError
from rlm_api.events import execution_updates
from rlm_api.model_checks import ModelRefused, check_models
from rlm_api.routes.executions import _wait_for, submit_execution
from rlm_api.routes.inputs import load_json, validate
from rlm_api.schemas import ExecuteRequest
from rlm_api.serializers import execution_links
from rlm_api.streams import take_slot
from rlm_shared.models import Context, Execution, Session
from rlm_shared.storable import unstorable_field

bp = Blueprint("openai_compat", __name__, url_prefix="/v1")
log = logging.getLogger("rlm.api")

EXECUTION_HEADER = "X-RLM-Execution-Id"
#: Waiting past the execution's own timeout: the time a worker may take to pick it up and finish.
WAIT_GRACE_SECONDS = 30.0
NOT_FOUND_SENTENCE = (
    "No answer found: the context does not seem to answer this question "
    "(execution {id}; its trace shows what was read: {dashboard})."
)
#: Execution outcomes other than success: (HTTP status, error code, OpenAI error type).
FAILURES = {
    "failed": (500, "execution_failed", "server_error"),
    "timed_out": (504, "execution_timed_out", "server_error"),
    "cancelled": (409, "execution_cancelled", "invalid_request_error"),
    "running": (504, "execution_still_running", "server_error"),
}
ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
#: Fields of the execution request, as the chat request names them.
PARAMS = {"user_query": "messages", "model": "model"}


# --- errors -----------------------------------------------------------------------------------


def openai_error(
    status: int,
    message: str,
    code: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    execution_id: str | None = None,
) -> Response:
    kind = ERROR_TYPES.get(status) or ("server_error" if status >= 500 else "invalid_request_error")
    body: dict[str, Any] = {"message": message, "type": kind, "param": param, "code": code}
    if execution_id:
        body["execution_id"] = execution_id
    response = jsonify({"error": body})
    response.status_code = status
    response.headers.update(headers or {})
    if execution_id:
        response.headers[EXECUTION_HEADER] = execution_id
        response.headers["x-should-retry"] = "false"
    return response


@bp.errorhandler(ChatRequestError)
def _chat_error(exc: ChatRequestError):
    return openai_error(exc.status, exc.message, exc.code, exc.param)


@bp.errorhandler(APIError)
def _api_error(exc: APIError):
    """The API's errors, reshaped: a refused model is 403, an invalid field 400 naming it."""
    field = exc.details[0].get("field") if isinstance(exc.details, list) and exc.details else None
    param = PARAMS.get(field, f"rlm.{field}") if field and field != "(body)" else None
    status = exc.status
    if exc.code == "model_not_allowed":
        status = 403
    elif status == 422:
        status = 400
    return openai_error(status, exc.message, exc.code, param, exc.headers)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    status = exc.code or 500
    return openai_error(status, exc.description or exc.name, (exc.name or "error").lower().replace(" ", "_"))


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    log.exception("unhandled error on %s %s", request.method, request.path)
    return openai_error(500, "an unexpected error occurred", "internal_error")


# --- models -----------------------------------------------------------------------------------


def _settings():
    return current_app.config["RLM_SETTINGS"]


def _usable(root_model: str | None) -> bool:
    if root_model is None:
        return True
    try:
        check_models(_settings(), model=root_model)
    except ModelRefused:
        return False
    return True


def model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "rlm-engine"}


@bp.get("/models")
def list_models():
    """`rlm`, the aliases, and `rlm/<model>` for every usable model the allow-list names exactly
    (a pattern such as `openai/*` is listed under `rlm.allowed_patterns`: any match works)."""
    settings = _settings()
    aliases = settings.model_aliases()
    patterns = settings.model_policy().patterns
    exact = [p for p in patterns if not any(ch in p for ch in "*?[")]
    ids = ["rlm", *aliases, *(f"rlm/{model}" for model in exact)]
    usable = [i for i in dict.fromkeys(ids) if _usable(resolve_model(i, aliases))]
    return {
        "object": "list",
        "data": [model_object(i) for i in usable],
        "rlm": {"allowed_patterns": list(patterns), "aliases": aliases},
    }


@bp.get("/models/<path:model_id>")
def get_model(model_id: str):
    root_model = resolve_model(model_id, _settings().model_aliases())
    if not _usable(root_model):
        raise ChatRequestError(
            f"the model {model_id!r} is not allowed here (MODEL_ALLOWLIST)", "model", 404, "model_not_found"
        )
    return model_object(model_id)


# --- chat completions ---------------------------------------------------------------------------


def _owned_context(context_id: str) -> str:
    """`context_id` if the caller may use it: one of its executions or sessions reads it."""
    if current_owner() is None:
        found = db.session.get(Context, context_id) is not None
    else:
        found = any(
            db.session.scalar(
                owned(sa.select(model.id).where(model.context_id == context_id), model).limit(1)
            )
            for model in (Execution, Session)
        )
    if not found:
        raise ChatRequestError(f"context {context_id} not found", "rlm.context_id", 404, "not_found")
    return context_id


def execution_request(chat: ChatCompletionRequest) -> tuple[ExecuteRequest, str | None]:
    """The `POST /api/execute` body this chat request amounts to, validated by the same schema."""
    if chat.n not in (None, 1):
        raise ChatRequestError("n must be 1: an execution gives one answer", "n")
    if chat.tool_choice not in (None, "none", "auto"):
        raise ChatRequestError(
            "tool calling is not supported: the reply is the execution's answer", "tool_choice"
        )
    root_model = resolve_model(chat.model, _settings().model_aliases())
    ext = chat.rlm
    explicit = ext is not None and bool(ext.context is not None or ext.context_id or ext.session_id)
    read = read_messages(chat.messages, explicit)
    data: dict[str, Any] = {"user_query": read.question}
    if root_model is not None:
        data["model"] = root_model
    if read.context is not None:
        data["context"] = read.context
    if ext is not None:
        data.update(ext.model_dump(exclude_unset=True, exclude_none=True, exclude={"context_id"}))
        if ext.context is not None:
            data["context"] = ext.context
    context_id = _owned_context(ext.context_id) if ext is not None and ext.context_id else None
    if context_id is not None and "context" in data:
        raise ChatRequestError("send rlm.context or rlm.context_id, not both", "rlm.context_id")
    return validate(ExecuteRequest, data), context_id


def _parse() -> ChatCompletionRequest:
    if not (request.mimetype or "").endswith("json"):
        raise ChatRequestError("send the request as application/json", None, 415, "unsupported_media_type")
    body = load_json(request.get_data(cache=False))
    if not isinstance(body, dict):
        raise ChatRequestError("the JSON body must be an object", None)
    unstorable = unstorable_field(body)
    if unstorable:
        raise ChatRequestError(unstorable[1], unstorable[0])
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValueError as exc:  # pydantic's ValidationError
        errors = exc.errors(include_url=False, include_input=False)  # type: ignore[attr-defined]
        first = errors[0]
        field = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        verb = "missing" if first["type"] == "missing" else "invalid"
        raise ChatRequestError(f"{verb} {field}: {message}", field or None) from None


def _wait_seconds(execution: Execution) -> float:
    wait = (
        float(execution.options.get("timeout_seconds") or _settings().execution_timeout) + WAIT_GRACE_SECONDS
    )
    cap = current_app.config.get("OPENAI_COMPAT_MAX_WAIT_SECONDS")
    return min(wait, float(cap)) if cap is not None else wait


def rlm_field(execution: Execution) -> dict[str, Any]:
    """What an RLM execution says beyond the OpenAI reply: its id, outcome and links."""
    links = execution_links(execution.id)
    return {
        "execution_id": execution.id,
        "status": execution.status,
        "answer_found": execution.answer_found,
        "offline": execution.offline,
        "root_model": execution.root_model,
        "sub_model": execution.sub_model,
        "iterations": execution.iterations,
        "llm_calls": execution.llm_calls,
        "sub_calls": execution.sub_calls,
        "cost_usd": execution.total_cost_usd,
        "guard_hit": execution.guard_hit,
        "dashboard_url": links["dashboard"],
        "links": links,
    }


def usage(execution: Execution) -> dict[str, int]:
    """The execution's totals: every model call of the trace tree, root turns and sub-calls."""
    prompt, completion = execution.total_input_tokens, execution.total_output_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def answer_text(execution: Execution) -> str:
    if execution.answer_found is False:
        return NOT_FOUND_SENTENCE.format(
            id=execution.id, dashboard=execution_links(execution.id)["dashboard"]
        )
    return execution.final_answer or ""


def failure(execution: Execution) -> tuple[int, str, str, str]:
    """(status, code, type, message) of an execution that gave no answer."""
    status, code, kind = FAILURES.get(execution.status, FAILURES["running"])
    if execution.status in ("queued", "running"):
        message = f"execution {execution.id} is still {execution.status}; follow it at {execution_links(execution.id)['self']}"
    else:
        message = (
            f"execution {execution.id} {execution.status.replace('_', ' ')}: {execution.error or 'no answer'}"
        )
    return status, code, kind, message


def _created(execution: Execution) -> int:
    return int(execution.created_at.timestamp()) if execution.created_at else int(time.time())


@bp.post("/chat/completions")
def chat_completions():
    chat = _parse()
    body, context_id = execution_request(chat)
    held = take_slot()  # the answer holds a thread until the run ends: 429 past the stream limits
    try:
        execution = submit_execution(body, context_id=context_id)
    except BaseException:
        held.release()
        raise
    execution_id, created, wait = execution.id, _created(execution), _wait_seconds(execution)
    if chat.stream:
        include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
        db.session.rollback()  # no transaction held open for the stream's life
        stream = completion_chunks(execution_id, chat.model, created, include_usage, wait)
        return Response(
            stream_with_context(held.held_while(stream)),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", EXECUTION_HEADER: execution_id},
        )
    try:
        current = _wait_for(execution_id, wait)
    finally:
        held.release()
    if current.status != "succeeded":
        status, code, _, message = failure(current)
        return openai_error(status, message, code, execution_id=current.id)
    reply = {
        "id": f"chatcmpl-{current.id}",
        "object": "chat.completion",
        "created": _created(current),
        "model": chat.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer_text(current)},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": usage(current),
        "system_fingerprint": None,
        "rlm": rlm_field(current),
    }
    return reply, 200, {EXECUTION_HEADER: current.id}


def _data(payload: Any) -> str:
    return f"data: {json.dumps(payload, default=str, ensure_ascii=False)}\n\n"


def completion_chunks(
    execution_id: str, model: str, created: int, include_usage: bool, max_seconds: float
) -> Iterator[str]:
    """The answer as `chat.completion.chunk` events, then `data: [DONE]`. Progress (trace nodes
    and status changes, as `/api/executions/<id>/events` sends them) goes in SSE comment lines,
    `: progress {...}`, which SSE clients, the openai SDK among them, skip."""
    base = {
        "id": f"chatcmpl-{execution_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
    }
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _data({**base, "choices": [choice], **extra})

    yield chunk(
        {"role": "assistant", "content": ""}, rlm={"execution_id": execution_id, **_links(execution_id)}
    )
    poll = float(current_app.config.get("API_EVENTS_POLL_SECONDS", 0.25))
    for update in execution_updates(execution_id, poll=poll, max_seconds=max_seconds):
        if update is None:
            yield ": keep-alive\n\n"
            continue
        event, data = update
        if event in ("node", "status"):
            yield f": progress {json.dumps({'event': event, **data}, default=str, ensure_ascii=False)}\n\n"
            continue
        execution = db.session.get(Execution, execution_id)
        db.session.rollback()
        if execution is None or execution.status != "succeeded":
            if execution is None:
                status, code, kind, message = (
                    404,
                    "not_found",
                    "invalid_request_error",
                    f"execution {execution_id} was deleted",
                )
            else:
                status, code, kind, message = failure(execution)
            error = {
                "message": message,
                "type": kind,
                "param": None,
                "code": code,
                "execution_id": execution_id,
            }
            yield _data({"error": error})
        else:
            yield chunk({"content": answer_text(execution)})
            yield chunk({}, "stop", rlm=rlm_field(execution))
            if include_usage:
                yield _data({**base, "choices": [], "usage": usage(execution)})
        break
    yield "data: [DONE]\n\n"


def _links(execution_id: str) -> dict[str, Any]:
    links = execution_links(execution_id)
    return {"dashboard_url": links["dashboard"], "links": links}
