"""What the MCP tools do, as plain functions over the database: the same checks and records as
the API (`submit_execution`, `get_owned_execution`, `owned`), so a tool can reach nothing the API
forbids. Call them inside an app context whose `g` names the caller (see `tools.caller_context`);
a refusal is a `Refused` carrying the API's own message.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app
from pydantic import ValidationError

from rlm_api.auth import owned
from rlm_api.database import db
from rlm_api.errors import APIError
from rlm_api.mcp.files import FileRefused, resolve_under_root
from rlm_api.routes.executions import get_owned_execution, submit_execution
from rlm_api.schemas import ID_PATTERN, ExecuteRequest
from rlm_api.serializers import execution_links
from rlm_shared.live_totals import totals_for
from rlm_shared.models import Execution, Session, TraceNode
from rlm_shared.storable import unstorable_field
from rlm_worker.documents import InputError, InputLimits, read_path

#: Root-level steps a trace summary lists (the rest are counted).
SUMMARY_STEPS = 12
PREVIEW_CHARS = 300
MAX_LISTED = 50


class Refused(Exception):
    """A tool call the server will not carry out; the message is for the calling agent."""


def _refusal(exc: APIError | ValidationError) -> Refused:
    """The API's message for the same mistake (a validation error: its first field and reason)."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "arguments"
        return Refused(f"{where}: {first['msg']}")
    return Refused(exc.message)


def submit(
    arguments: dict[str, Any], agent_id: str | None, context_id: str | None = None, skipped=None
) -> str:
    """Validate `arguments` as a `POST /api/execute` body and start the execution; its id."""
    unstorable = unstorable_field(arguments)
    if unstorable:
        raise Refused(unstorable[1])
    try:
        body = ExecuteRequest.model_validate({k: v for k, v in arguments.items() if v is not None})
        return submit_execution(body, agent_id=agent_id, context_id=context_id, skipped=skipped).id
    except (APIError, ValidationError) as exc:
        raise _refusal(exc) from None


def readable_context(context_id: str) -> str:
    """A context the caller may read: one its own executions or sessions use (any, with no tokens)."""
    if re.fullmatch(ID_PATTERN, context_id):
        by_execution = owned(sa.select(Execution.id).where(Execution.context_id == context_id), Execution)
        by_session = owned(sa.select(Session.id).where(Session.context_id == context_id), Session)
        if db.session.scalar(by_execution.limit(1)) or db.session.scalar(by_session.limit(1)):
            return context_id
    raise Refused(f"context {context_id} not found")


def read_files(path: str) -> tuple[Any, list[dict[str, str]]]:
    """The context of a file or folder under MCP_FILES_ROOT, and the files skipped in it."""
    settings = current_app.config["RLM_SETTINGS"]
    unstorable = unstorable_field({"path": path})
    if unstorable:
        raise Refused(unstorable[1])
    try:
        target = resolve_under_root(settings.mcp_files_root, path)
    except FileRefused as exc:
        raise Refused(str(exc)) from None
    try:
        converted = read_path(target, InputLimits.from_settings(settings))
    except InputError as exc:
        # The reader names files by their full path; the agent knows them relative to the root.
        root = str(Path(settings.mcp_files_root).resolve()) + os.sep
        raise Refused(str(exc).replace(root, "")) from None
    return converted.context, converted.skipped_dicts


def execution_view(execution_id: str, with_trace: bool = True) -> dict[str, Any]:
    """Status, answer, totals and (finished or not) a summary of the trace so far."""
    try:
        execution = get_owned_execution(execution_id)
    except APIError as exc:
        raise _refusal(exc) from None
    view = brief(execution)
    view.update(
        error=execution.error,
        guard_hit=execution.guard_hit,
        iterations=execution.iterations,
        **totals_for(db.session, execution.id, execution.status, execution).record_fields(),
        duration_seconds=execution.duration_seconds,
        links=execution_links(execution.id),
    )
    if with_trace:
        view["trace"] = trace_summary(execution.id)
    return view


def brief(execution: Execution) -> dict[str, Any]:
    return {
        "id": execution.id,
        "status": execution.status,
        "question": execution.user_query,
        "answer": execution.final_answer,
        "answer_found": execution.answer_found,
        "root_model": execution.root_model,
        "sub_model": execution.sub_model,
        "session_id": execution.session_id,
        "agent_id": execution.agent_id,
        "created_at": execution.created_at.isoformat() if execution.created_at else None,
    }


def trace_summary(execution_id: str) -> dict[str, Any]:
    """The tree in a few lines: steps by kind, calls and tokens by model, failures, and the root's
    own steps (code and replies cut short); the full tree is at `links.trace`."""
    nodes = db.session.scalars(
        sa.select(TraceNode).where(TraceNode.execution_id == execution_id).order_by(TraceNode.path)
    ).all()
    by_model: dict[str, dict[str, Any]] = {}
    for node in nodes:
        if node.model and node.kind in ("iteration", "llm_call"):
            row = by_model.setdefault(node.model, {"calls": 0, "input_tokens": 0, "output_tokens": 0})
            row["calls"] += 1
            row["input_tokens"] += node.input_tokens or 0
            row["output_tokens"] += node.output_tokens or 0
    roots = {n.id for n in nodes if n.parent_id is None}
    root_steps = [n for n in nodes if n.parent_id in roots]
    return {
        "nodes": len(nodes),
        "by_kind": dict(Counter(n.kind for n in nodes)),
        "max_depth": max((n.depth for n in nodes), default=0),
        "by_model": by_model,
        "failed": [
            {"kind": n.kind, "path": n.path, "error": _cut(n.error)} for n in nodes if n.status == "failed"
        ][:SUMMARY_STEPS],
        "root_steps": [
            {
                "kind": n.kind,
                "status": n.status,
                "model": n.model,
                "code": _cut(n.code),
                "output": _cut(n.stdout or n.response),
            }
            for n in root_steps[-SUMMARY_STEPS:]
        ],
        "root_steps_total": len(root_steps),
    }


def recent(limit: int, status: str | None, agent_id: str | None) -> list[dict[str, Any]]:
    stmt = owned(sa.select(Execution), Execution).order_by(Execution.created_at.desc(), Execution.id)
    if status:
        stmt = stmt.where(Execution.status == status)
    if agent_id:
        stmt = stmt.where(Execution.agent_id == agent_id)
    return [brief(e) for e in db.session.scalars(stmt.limit(max(1, min(limit, MAX_LISTED))))]


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= PREVIEW_CHARS:
        return text
    return text[:PREVIEW_CHARS] + f"… ({len(text):,} characters)"
