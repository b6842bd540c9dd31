"""The dashboard's two forms: create a session, start an execution. Same storage path as the API.

The form posts are handled here rather than through HTTP to the API: contexts go through
`store_context` (deduplicated), executions through `launch_execution`, with the settings' guards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from pydantic import TypeAdapter, ValidationError
from werkzeug.datastructures import FileStorage

from rlm_api.auth import current_owner
from rlm_api.ceilings import over_ceiling
from rlm_api.database import db
from rlm_api.launch import launch_execution
from rlm_api.model_checks import ModelRefused, check_models
from rlm_api.planning import plan_run
from rlm_api.quota import QuotaExceeded, check_active_quota
from rlm_api.schemas import ModelName
from rlm_shared.contexts import context_size, store_context
from rlm_shared.models import Execution, Session
from rlm_shared.storable import unstorable_field
from rlm_shared.strategies import STRATEGIES
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
    status: int = 400  # the page's status when there are errors (429 over the quota)


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


def _refuse_unstorable(form: Any, result: FormResult) -> None:
    """A field holding a NUL or a lone surrogate (Postgres stores neither) is an error on it."""
    for name in form:
        found = unstorable_field({name: form.get(name, "")})
        if found:
            result.errors[found[0]] = found[1]


def create_session(form: Any, files: Any) -> FormResult:
    result = FormResult(values={"name": form.get("name", "")})
    _refuse_unstorable(form, result)
    if result.errors:
        return result
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


def _options(form: Any, errors: dict[str, str], planned: dict[str, Any]) -> dict[str, Any]:
    """The settings' defaults, then the plan's (strategy, chunk size), then the guards the form
    set (blank fields keep the default)."""
    settings = current_app.config["RLM_SETTINGS"]
    values: dict[str, Any] = {**settings.execution_defaults(), **planned}
    chosen: dict[str, Any] = {}
    for name in ("max_iterations", "max_recursion_depth", "timeout_seconds", "max_cost_usd"):
        raw = (form.get(name) or "").strip()
        if raw:
            values[name] = chosen[name] = raw
    try:
        options = ExecutionOptions(**values).model_dump()
        too_high = over_ceiling(settings, {name: options[name] for name in chosen})
        if too_high:
            errors[too_high[0]] = too_high[1]
            return {}
        return options
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            errors[str(err["loc"][0])] = err["msg"]
        return {}


def _model(result: FormResult, name: str) -> str | None:
    """The model the form named, checked as the API checks it; None when left blank."""
    value = result.values[name].strip()
    if not value:
        return None
    try:
        return TypeAdapter(ModelName).validate_python(value)
    except ValidationError as exc:
        result.errors[name] = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
        return None


def start_execution(session: Session, form: Any) -> FormResult:
    keys = ("user_query", "model", "sub_model", "strategy", "max_iterations", "max_recursion_depth")
    result = FormResult(values={k: form.get(k, "") for k in (*keys, "timeout_seconds", "max_cost_usd")})
    _refuse_unstorable(form, result)
    if result.errors:
        return result
    query = result.values["user_query"].strip()
    if not query:
        result.errors["user_query"] = "ask a question"
    if session.context_id is None:
        result.errors["user_query"] = "this session has no context to run over"
    strategy = result.values["strategy"].strip() or None
    if strategy is not None and strategy not in STRATEGIES:
        result.errors["strategy"] = f"one of {', '.join(STRATEGIES)}, or blank for a root model"
    model, sub_model = _model(result, "model"), _model(result, "sub_model")
    if result.errors:
        return result
    # The same plan as `rlm run` and the API: with nothing configured, the offline plan.
    plan = plan_run(current_app.config["RLM_SETTINGS"], model, sub_model, strategy, None)
    options = _options(form, result.errors, plan.options)
    if result.errors:
        return result
    try:  # only the models that will be called: a built-in strategy calls no root model
        check_models(
            current_app.config["RLM_SETTINGS"],
            model=None if plan.root_label and not model else plan.root_model,
            sub_model=plan.sub_model,
        )
    except ModelRefused as exc:
        result.errors[exc.field] = exc.message
        return result
    try:  # the API's quota, under the same lock (released by the commit below)
        check_active_quota()
    except QuotaExceeded as exc:
        result.errors["user_query"] = f"{exc}; wait for one to finish"
        result.status = 429
        return result
    execution = Execution(
        session_id=session.id,
        context_id=session.context_id,
        user_query=query,
        root_model=plan.root_model,
        sub_model=plan.sub_model,
        options=options,
        offline=plan.offline,
        status="queued",
        owner=current_owner(),
    )
    db.session.add(execution)
    db.session.commit()
    launch_execution(execution.id)
    result.created_id = execution.id
    return result
