"""Scripted model behaviour for dashboard tests over real executions: hostile text everywhere."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from rlm_api.database import db
from rlm_shared.models import FINISHED_STATUSES, Execution
from tests.support.scripted_model import turn_index
from tests.support.services import wait_for

#: What a hostile document or model might write; none of it may run or change the page.
HOSTILE = "<script>alert('xss')</script><img src=x onerror=alert('img')><b>bold</b>"

FIRST_TURN = f"""I will note what I found. <i>{HOSTILE}</i>
```repl
memory.append("learnings", "the text says {HOSTILE}")
answers = llm_query_batched(["Summarise part one {HOSTILE}", "Summarise part two"])
print("{HOSTILE}", answers)
```"""

SECOND_TURN = f"""```repl
memory.append("learnings", "two parts read")
FINAL("done {HOSTILE}")
```"""


def hostile_responder(request: dict[str, Any]) -> str:
    """Root turns run code that writes hostile text to memory, stdout and sub-calls; sub-calls echo it."""
    messages = request.get("messages", [])
    system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
    if "Recursive Language Model" in str(system):
        return FIRST_TURN if turn_index(request) == 0 else SECOND_TURN
    return f"Part summary: {HOSTILE}"


def run_hostile_execution(client, query: str = f"What does it say? {HOSTILE}") -> tuple[str, str]:
    """A session with a hostile context and one execution over it; returns (session_id, execution_id)."""
    session = client.post(
        "/api/sessions", json={"name": f"Hostile {HOSTILE}", "context": f"{HOSTILE}\n" + "plain text. " * 50}
    )
    assert session.status_code == 201, session.get_json()
    session_id = session.get_json()["id"]
    started = client.post("/api/execute", json={"user_query": query, "session_id": session_id})
    assert started.status_code == 202, started.get_json()
    return session_id, started.get_json()["execution_id"]


def wait_finished(app, execution_id: str, timeout: float = 60) -> Execution:
    def finished() -> Execution | None:
        with app.app_context():
            row = db.session.scalar(sa.select(Execution).where(Execution.id == execution_id))
            return row if row is not None and row.status in FINISHED_STATUSES else None

    return wait_for(finished, timeout=timeout, what=f"execution {execution_id} to finish")
