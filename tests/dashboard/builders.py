"""Small, explicit traces for page tests, written through the real models and trace sink."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask

from rlm_api.database import db
from rlm_shared.contexts import store_context
from rlm_shared.models import Execution, Session
from rlm_shared.trace_sink import SqlTraceSink
from rlm_worker.engine.tree import TreeCursor
from rlm_worker.engine.types import TraceNode

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
CODE = 'notes = [line for line in context.splitlines() if "date" in line and len(line) < 80]\nprint(len(notes), "notes")\n'


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@dataclass
class Built:
    execution_id: str
    nodes: dict[str, TraceNode] = field(default_factory=dict)
    session_id: str | None = None


def make_session(
    app: Flask, name: str = "10-K review", context: str | None = "some text", **fields: Any
) -> str:
    with app.app_context():
        context_id = store_context(context).id if context is not None else None
        session = Session(name=name, context_id=context_id, memory=fields.pop("memory", {}), **fields)
        db.session.add(session)
        db.session.commit()
        return session.id


def make_execution(app: Flask, trace: bool = True, **fields: Any) -> Built:
    """An execution; with `trace`, a small tree: root → iteration → code → 2 sub-calls (one failed),
    a second iteration, and memory snapshots that add and remove lines."""
    values: dict[str, Any] = {
        "user_query": "List every date",
        "root_model": "openai/gpt-4o",
        "sub_model": "openai/gpt-4o-mini",
        "status": "succeeded",
        "final_answer": "2023-04-01",
        "created_at": T0,
        "started_at": T0,
        "finished_at": at(9),
        "iterations": 2,
        "total_input_tokens": 1200,
        "total_output_tokens": 300,
        "total_cost_usd": 0.0123,
        "llm_calls": 4,
        "sub_calls": 2,
    }
    values.update(fields)
    with app.app_context():
        context_id = store_context(values.pop("context", "The filing is dated 2023-04-01.")).id
        execution = Execution(context_id=context_id, **values)
        db.session.add(execution)
        db.session.commit()
        built = Built(execution_id=execution.id, session_id=execution.session_id)
        if trace:
            _trace(built, SqlTraceSink(db.engine))
        return built


def _trace(built: Built, sink: SqlTraceSink) -> None:
    eid = built.execution_id
    root = TreeCursor(eid, None).child(
        "root",
        0,
        model="openai/gpt-4o",
        prompt="List every date",
        status="succeeded",
        started_at=at(0),
        finished_at=at(9),
        response="2023-04-01",
    )
    under_root = TreeCursor(eid, root)
    it1 = under_root.child(
        "iteration",
        0,
        model="openai/gpt-4o",
        prompt="Output of code cell 1",
        status="succeeded",
        response="I will search.\n```repl\n" + CODE + "```",
        input_tokens=500,
        output_tokens=100,
        cost_usd=0.004,
        started_at=at(0),
        finished_at=at(5),
    )
    code = TreeCursor(eid, it1).child(
        "code",
        0,
        code=CODE,
        stdout="3 notes\n",
        stderr="",
        status="succeeded",
        started_at=at(1),
        finished_at=at(4),
    )
    calls = TreeCursor(eid, code)
    ok = calls.child(
        "llm_call",
        1,
        model="openai/gpt-4o-mini",
        prompt="Find dates:\n" + "x" * 3000,
        response="2023-04-01",
        input_tokens=100,
        output_tokens=10,
        cost_usd=0.001,
        status="succeeded",
        started_at=at(1.5),
        finished_at=at(3),
    )
    bad = calls.child(
        "llm_call",
        1,
        model="openai/gpt-4o-mini",
        prompt="Find dates in part 2",
        status="failed",
        error="RateLimitError: 429 slow down",
        started_at=at(1.6),
        finished_at=at(2.5),
    )
    it2 = under_root.child(
        "iteration",
        0,
        model="openai/gpt-4o",
        prompt="Output of code cell 1:\n3 notes",
        response='FINAL("2023-04-01")',
        input_tokens=600,
        output_tokens=190,
        cost_usd=0.0073,
        status="succeeded",
        started_at=at(5),
        finished_at=at(9),
    )
    sink.nodes_recorded([root, it1, code, ok, bad, it2])
    sink.memory_snapshot(eid, root.id, {"learnings": ""})
    sink.memory_snapshot(
        eid, it1.id, {"learnings": "dates live in the notes\nold guess: 2022", "plan": "scan"}
    )
    sink.memory_snapshot(eid, it2.id, {"learnings": "dates live in the notes\nanswer: 2023-04-01"})
    built.nodes = {"root": root, "it1": it1, "code": code, "ok": ok, "bad": bad, "it2": it2}
