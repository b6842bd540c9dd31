"""Server-Sent Events for one execution: status changes and new or changed trace nodes.

The stream polls the database (light columns only: no prompts or outputs) every `poll` seconds;
workers write the trace as they go, so this works the same in embedded and distributed mode. Events:
- `node`: a trace node appeared or changed (status, tokens, timing), without its texts;
- `status`: the execution's status or totals changed;
- `end`: the execution finished; the data is the full execution record;
- `timeout`: the stream reached its maximum duration; reconnect to continue (nodes are re-sent).
A comment line every `keepalive` seconds keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from rlm_api.database import db
from rlm_api.serializers import NODE_SUMMARY_FIELDS, execution_dict, node_summary_dict
from rlm_shared.live_totals import totals_for
from rlm_shared.models import FINISHED_STATUSES, Execution, TraceNode

STATUS_FIELDS = (
    "status",
    "iterations",
    "llm_calls",
    "sub_calls",
    "total_input_tokens",
    "total_output_tokens",
    "total_cost_usd",
    "guard_hit",
    "started_at",
    "finished_at",
)
_NODE_COLUMNS = [getattr(TraceNode, name) for name in NODE_SUMMARY_FIELDS]
_STATUS_COLUMNS = [getattr(Execution, name) for name in STATUS_FIELDS]


def format_event(event: str, data: Any, event_id: int | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"data: {json.dumps(data, default=str, ensure_ascii=False)}")
    return "\n".join(lines) + "\n\n"


def _status_dict(row: sa.Row) -> dict[str, Any]:
    out = dict(row._mapping)
    for key in ("started_at", "finished_at"):
        out[key] = out[key].isoformat() if out[key] else None
    return out


def _node_fingerprint(row: sa.Row) -> tuple[Any, ...]:
    return (row.status, row.finished_at, row.input_tokens, row.output_tokens, row.cost_usd, row.error)


def execution_updates(
    execution_id: str, poll: float = 0.25, max_seconds: float = 600.0, keepalive: float = 15.0
) -> Iterator[tuple[str, Any] | None]:
    """The stream's events as `(event, data)` pairs, None when `keepalive` seconds passed without
    one; ends after `end` or `timeout`. Runs inside the request's app context. The SSE stream below
    and the OpenAI-compatible stream (`rlm_api.routes.openai_compat`) both read it."""
    seen: dict[str, tuple[Any, ...]] = {}
    last_status: dict[str, Any] | None = None
    started = last_sent = time.monotonic()
    while True:
        with db.engine.connect() as conn:
            status_row = conn.execute(sa.select(*_STATUS_COLUMNS).where(Execution.id == execution_id)).first()
            if status_row is None:  # deleted while streaming
                yield "end", {"id": execution_id, "status": "deleted"}
                return
            nodes = conn.execute(
                sa.select(*_NODE_COLUMNS)
                .where(TraceNode.execution_id == execution_id)
                .order_by(TraceNode.path)
            ).all()
            status = _status_dict(status_row)
            # While it runs the totals come from the trace just read (one source with /trace).
            status.update(totals_for(conn, execution_id, status["status"], status).record_fields())
        for node in nodes:
            fingerprint = _node_fingerprint(node)
            if seen.get(node.id) != fingerprint:
                seen[node.id] = fingerprint
                last_sent = time.monotonic()
                yield "node", node_summary_dict(node)
        if status != last_status:
            last_status = status
            last_sent = time.monotonic()
            yield "status", {"id": execution_id, **status}
        if status["status"] in FINISHED_STATUSES:
            execution = db.session.get(Execution, execution_id)
            record = execution_dict(execution) if execution is not None else {"id": execution_id, **status}
            db.session.rollback()
            yield "end", record
            return
        now = time.monotonic()
        if now - started >= max_seconds:
            yield "timeout", {"id": execution_id, "after_seconds": round(now - started, 1)}
            return
        if now - last_sent >= keepalive:
            last_sent = now
            yield None
        time.sleep(poll)


def execution_events(
    execution_id: str, poll: float = 0.25, max_seconds: float = 600.0, keepalive: float = 15.0
) -> Iterator[str]:
    """The stream's text, event by event, numbered (`id:`) but for `timeout`."""
    yield "retry: 2000\n\n"
    counter = 0
    for update in execution_updates(execution_id, poll, max_seconds, keepalive):
        if update is None:
            yield ": keep-alive\n\n"
            continue
        event, data = update
        if event in ("node", "status", "end"):
            counter += 1
        yield format_event(event, data, counter if event != "timeout" else None)
