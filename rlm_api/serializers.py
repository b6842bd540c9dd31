"""Rows to JSON-ready dicts, one function per resource, shared by the API and the dashboard."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rlm_api.database import db
from rlm_shared.live_totals import RunTotals, totals_for
from rlm_shared.models import Execution, Session, TraceNode
from rlm_worker.engine.variables import strict_json_variables


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def execution_dict(e: Execution, totals: RunTotals | None = None) -> dict[str, Any]:
    """The record; its totals from the trace while it runs (`rlm_shared.live_totals`), so they
    agree with `/trace` at every moment. `totals`: already read (a list page reads them in one query)."""
    totals = totals or totals_for(db.session, e.id, e.status, e)
    return {
        "id": e.id,
        "status": e.status,
        "session_id": e.session_id,
        "context_id": e.context_id,
        "user_query": e.user_query,
        "root_model": e.root_model,
        "sub_model": e.sub_model,
        "options": e.options,
        "final_answer": e.final_answer,
        "answer_found": e.answer_found,
        "error": e.error,
        "guard_hit": e.guard_hit,
        "forced_final": e.forced_final,
        "offline": e.offline,
        "agent_id": e.agent_id,
        "iterations": e.iterations,
        **totals.record_fields(),
        "created_at": _iso(e.created_at),
        "started_at": _iso(e.started_at),
        "finished_at": _iso(e.finished_at),
        "duration_seconds": e.duration_seconds,
        "links": execution_links(e.id),
    }


def execution_links(execution_id: str) -> dict[str, str]:
    return {
        "self": f"/api/executions/{execution_id}",
        "trace": f"/api/executions/{execution_id}/trace",
        "events": f"/api/executions/{execution_id}/events",
        "cancel": f"/api/executions/{execution_id}/cancel",
        "dashboard": f"/executions/{execution_id}",
    }


def session_dict(s: Session, context_size: int | None = None) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "context_id": s.context_id,
        "context_size": context_size,
        "memory": s.memory,
        # A value an older version stored that is not JSON (Infinity) is left out; the next
        # execution of the session drops it for good and says so in its trace.
        "variables": strict_json_variables(s.variables or {})[0],
        "created_at": _iso(s.created_at),
        "updated_at": _iso(s.updated_at),
    }


def node_dict(n: TraceNode) -> dict[str, Any]:
    return {
        "id": n.id,
        "parent_id": n.parent_id,
        "depth": n.depth,
        "seq": n.seq,
        "path": n.path,
        "kind": n.kind,
        "model": n.model,
        "status": n.status,
        "prompt": n.prompt,
        "response": n.response,
        "code": n.code,
        "stdout": n.stdout,
        "stderr": n.stderr,
        "error": n.error,
        "input_tokens": n.input_tokens,
        "output_tokens": n.output_tokens,
        "cost_usd": n.cost_usd,
        "started_at": _iso(n.started_at),
        "finished_at": _iso(n.finished_at),
        "duration_seconds": n.duration_seconds,
    }


#: The columns of a node that stream over `/events`: no prompts or outputs, which can be 100 kB each.
NODE_SUMMARY_FIELDS = (
    "id",
    "parent_id",
    "depth",
    "seq",
    "path",
    "kind",
    "model",
    "status",
    "error",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "started_at",
    "finished_at",
)


def node_summary_dict(row: Any) -> dict[str, Any]:
    """A trace node without its texts; `row` has the `NODE_SUMMARY_FIELDS` attributes."""
    out = {name: getattr(row, name) for name in NODE_SUMMARY_FIELDS}
    out["started_at"], out["finished_at"] = _iso(row.started_at), _iso(row.finished_at)
    return out
