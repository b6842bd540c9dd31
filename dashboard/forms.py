"""The dashboard's two forms: create a session, start an execution. Same storage path as the API.

The form posts are handled here rather than through HTTP to the API: contexts go through
`store_context` (deduplicated), executions through `launch_execution`, with the settings' guards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from pydantic import ValidationError
from werkzeug.datastructures import FileStorage

from rlm_api.auth import current_owner
from rlm_api.contexts import context_size, store_context
from rlm_api.launch import launch_execution
from rlm_api.model_checks import ModelRefused, check_models
from rlm_api.models import Execution, Session, db
from rlm_worker.documents import InputError, InputLimits, read_uploads
from rlm_worker.engine.options import ExecutionOptions

NAME_MAX = 200


@dataclass
class FormResult:
    """What a handled form produced, or the messages to show next to its fields."""

    errors: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    created_id: str | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)


def _context(form: Any, files: Any, result: FormResult) -> Any:
    """The uploaded files through the input reader (a list of documents for several files or an
    archive; its skipped files noted on the result), else the pasted text."""
    uploads: list[FileStorage] = [u for u in files.getlist("context_file") if u.filename]
    if uploads:
        limits = InputLimits.from_settings(current_app.config["RLM_SETTINGS"])
        try:
            converted = read_uploads(((u.filename, u.read()) for u in uploads), limits)
        except InputError as exc:
            result.errors["context"] = str(exc)
            return None
        result.skipped = converted.skipped_dicts
        return converted.context
    text = form.get("context", "")
    return text if text.strip() else None


def create_session(form: Any, files: Any) -> FormResult:
    result = FormResult(values={"name": form.get("name", "")})
    name = result.values["name"].strip()
    if not name:
        result.errors["name"] = "give the session a name"
    elif len(name) > NAME_MAX:
        result.errors["name"] = f"at most {NAME_MAX} characters"
    context = _context(form, files, result)
    limit = current_app.config["RLM_SETTINGS"].max_context_size
    if context is not None and context_size(context) > limit:
        result.errors["context"] = (
            f"the context has {context_size(context):,} characters; the limit is {limit:,}"
        )
    if result.errors:
        return result
    context_id = store_context(context, owner=current_owner()).id if context is not None else None
    session = Session(name=name, context_id=context_id, memory={}, variables={}, owner=current_owner())
    db.session.add(session)
    db.session.commit()
    result.created_id = session.id
    return result


def _options(form: Any, errors: dict[str, str]) -> dict[str, Any]:
    """The settings' defaults, with the guards the form set (blank fields keep the default)."""
    values: dict[str, Any] = current_app.config["RLM_SETTINGS"].execution_defaults()
    for name in ("max_iterations", "max_recursion_depth", "timeout_seconds", "max_cost_usd"):
        raw = (form.get(name) or "").strip()
        if raw:
            values[name] = raw
    try:
        return ExecutionOptions(**values).model_dump()
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            errors[str(err["loc"][0])] = err["msg"]
        return {}


def start_execution(session: Session, form: Any) -> FormResult:
    keys = ("user_query", "model", "sub_model", "max_iterations", "max_recursion_depth", "timeout_seconds")
    result = FormResult(values={k: form.get(k, "") for k in (*keys, "max_cost_usd")})
    query = result.values["user_query"].strip()
    if not query:
        result.errors["user_query"] = "ask a question"
    if session.context_id is None:
        result.errors["user_query"] = "this session has no context to run over"
    options = _options(form, result.errors)
    if result.errors:
        return result
    settings = current_app.config["RLM_SETTINGS"]
    root_model = result.values["model"].strip() or settings.default_model
    sub_model = result.values["sub_model"].strip() or settings.sub_model or root_model
    try:
        check_models(settings, model=root_model, sub_model=sub_model)
    except ModelRefused as exc:
        result.errors[exc.field] = exc.message
        return result
    execution = Execution(
        session_id=session.id,
        context_id=session.context_id,
        user_query=query,
        root_model=root_model,
        sub_model=sub_model,
        options=options,
        status="queued",
        owner=current_owner(),
    )
    db.session.add(execution)
    db.session.commit()
    launch_execution(execution.id)
    result.created_id = execution.id
    return result
