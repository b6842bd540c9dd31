"""The API's endpoints as request descriptions, shared by the sync and the async client.

Each function returns a `Call` (method, path, httpx arguments, and how to read the answer), so
`client.py` and `aio.py` differ only in whether they `await` the send.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from rlm_client.models import Execution, Page, Session, Trace
from rlm_client.uploads import PathLike, context_parts

#: Read timeout beyond a submission's own `wait`, for the server to answer.
WAIT_MARGIN_SECONDS = 30.0


@dataclass
class Call:
    method: str
    path: str
    parse: Callable[[httpx.Response], Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


def _execution(response: httpx.Response) -> Execution:
    return Execution.model_validate(response.json())


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _body(
    fields: dict[str, Any], context: Any, files: PathLike | Iterable[PathLike] | None
) -> dict[str, Any]:
    """JSON when the context is a value; multipart (the other fields as form fields) with files."""
    if files is None:
        return {"json": _drop_none({**fields, "context": context})}
    if context is not None:
        raise ValueError("give either context or files, not both")
    form = {
        key: json.dumps(value) if isinstance(value, dict) else str(value)
        for key, value in _drop_none(fields).items()
    }
    return {"data": form, "files": context_parts(files)}


def submit(
    question: str,
    context: Any = None,
    *,
    files: PathLike | Iterable[PathLike] | None = None,
    session_id: str | None = None,
    model: str | None = None,
    sub_model: str | None = None,
    options: dict[str, Any] | None = None,
    strategy: str | None = None,
    root_code: str | None = None,
    wait: float | None = None,
    max_concurrent_subcalls: int | None = None,
) -> Call:
    if max_concurrent_subcalls is not None:  # a shorthand for the option of the same name
        options = {**(options or {}), "max_concurrent_subcalls": max_concurrent_subcalls}
    fields = {
        "user_query": question,
        "session_id": session_id,
        "model": model,
        "sub_model": sub_model,
        "options": options,
        "strategy": strategy,
        "root_code": root_code,
        "wait": wait,
    }
    kwargs = _body(fields, context, files)
    if wait:
        kwargs["timeout"] = httpx.Timeout(WAIT_MARGIN_SECONDS, read=wait + WAIT_MARGIN_SECONDS)
    return Call("POST", "/api/execute", _execution, kwargs)


def get_execution(execution_id: str) -> Call:
    return Call("GET", f"/api/executions/{execution_id}", _execution)


def cancel(execution_id: str) -> Call:
    return Call("POST", f"/api/executions/{execution_id}/cancel", _execution)


def trace(execution_id: str) -> Call:
    return Call("GET", f"/api/executions/{execution_id}/trace", lambda r: Trace.model_validate(r.json()))


def list_executions(
    status: str | None = None, session_id: str | None = None, limit: int = 50, cursor: str | None = None
) -> Call:
    params = _drop_none({"status": status, "session_id": session_id, "limit": limit, "cursor": cursor})
    return Call(
        "GET", "/api/executions", lambda r: Page[Execution].model_validate(r.json()), {"params": params}
    )


def create_session(
    name: str,
    context: Any = None,
    *,
    files: PathLike | Iterable[PathLike] | None = None,
    memory: dict[str, str] | None = None,
) -> Call:
    kwargs = _body({"name": name, "memory": memory}, context, files)
    return Call("POST", "/api/sessions", lambda r: Session.model_validate(r.json()), kwargs)


def get_session(session_id: str) -> Call:
    return Call("GET", f"/api/sessions/{session_id}", lambda r: Session.model_validate(r.json()))


def list_sessions(limit: int = 50, cursor: str | None = None) -> Call:
    params = _drop_none({"limit": limit, "cursor": cursor})
    return Call("GET", "/api/sessions", lambda r: Page[Session].model_validate(r.json()), {"params": params})


def delete_session(session_id: str) -> Call:
    return Call("DELETE", f"/api/sessions/{session_id}", lambda r: None)


def stats() -> Call:
    return Call("GET", "/api/stats", lambda r: r.json())
