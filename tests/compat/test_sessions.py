"""Multi-turn sessions as the reference's users expect them, through the real stack (HTTP, Celery,
Postgres, litellm): each run sees `context` (its input), `context_0 … context_<n>` (every input of
the session so far, read from the stored contexts) and `history` (the earlier runs)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.integration.test_engine_through_the_stack import fence, first_user, submit, wait_done

PROBE = """
import json
report = {
    "context": context,
    "numbered": [context_0, context_1, context_2],
    "last_is_context": context_2 is context,
    "questions": [run["question"] for run in history],
    "answers": [run["answer"] for run in history],
    "statuses": [run["status"] for run in history],
    "second_run_roles": [m["role"] for m in history[1]["messages"]],
    "second_run_reply": history[1]["messages"][1]["content"],
    "numbered_history": history_1 is history[1]["messages"] and history_0 is history[0]["messages"],
}
FINAL(json.dumps(report))
"""


def _context_rows(app) -> int:
    from rlm_api.database import db
    from rlm_shared.models import Context

    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Context))


@pytest.mark.difference("session-context")
@pytest.mark.difference("session-history")
def test_a_later_run_sees_every_earlier_input_and_the_history(stack_app, stack_client, scripted):
    session = stack_client.post(
        "/api/sessions", json={"name": "multi-turn", "context": "alpha beta gamma (session input)"}
    ).get_json()
    seen_first_messages: list[str] = []

    def responder(request):
        question = first_user(request)
        if "first question" in question:
            return fence("FINAL('one')")
        if "second question" in question:
            return fence("print(len(context))\nFINAL('two: ' + context)")
        seen_first_messages.append(question)
        return fence(PROBE)

    scripted.responder = responder
    first = wait_done(stack_client, submit(stack_client, user_query="first question", session_id=session["id"]))
    second = wait_done(
        stack_client,
        submit(stack_client, user_query="second question", session_id=session["id"], context="a second input"),
    )
    assert (first["status"], second["status"]) == ("succeeded", "succeeded"), (first, second)

    rows_before = _context_rows(stack_app)
    third = wait_done(stack_client, submit(stack_client, user_query="third question", session_id=session["id"]))
    assert third["status"] == "succeeded", third
    assert _context_rows(stack_app) == rows_before  # the inputs were read, never stored again

    report = json.loads(third["final_answer"])
    assert report["context"] == "alpha beta gamma (session input)"
    assert report["numbered"] == [
        "alpha beta gamma (session input)",
        "a second input",
        "alpha beta gamma (session input)",
    ]
    assert report["last_is_context"] is True
    assert report["questions"] == ["first question", "second question"]
    assert report["answers"] == ["one", "two: a second input"]
    assert report["statuses"] == ["succeeded", "succeeded"]
    assert report["second_run_roles"] == ["user", "assistant"]
    assert "FINAL('two: ' + context)" in report["second_run_reply"]
    assert report["numbered_history"] is True

    # The root is told what the names hold, never their text.
    (message,) = seen_first_messages
    assert "continues a session of 2 earlier runs" in message
    assert "a second input" not in message

    stored = stack_client.get(f"/api/sessions/{session['id']}").get_json()["variables"]
    assert not {"context", "context_0", "context_1", "context_2", "history"} & set(stored)
    assert "report" in stored  # the code's own variable is kept; the REPL's names are not


@pytest.mark.difference("session-variables-json-only")
def test_a_sessions_variables_carry_over_when_they_are_json(stack_client, scripted):
    session = stack_client.post("/api/sessions", json={"name": "carry", "context": "cats"}).get_json()

    def responder(request):
        if "The question:\nfirst" in first_user(request):
            return fence("computed_value = 42 * 2\ndef helper():\n    return 1\nFINAL('stored')")
        return fence(
            "result = computed_value + 10\ntry:\n    helper\n    kept = True\nexcept NameError:\n"
            "    kept = False\nFINAL(str(result) + ' ' + str(kept))"
        )

    scripted.responder = responder
    wait_done(stack_client, submit(stack_client, user_query="first", session_id=session["id"]))
    second = wait_done(stack_client, submit(stack_client, user_query="second", session_id=session["id"]))
    assert second["final_answer"] == "94 False", second["error"]


def test_a_run_without_a_session_has_context_0_and_an_empty_history(stack_client, scripted):
    scripted.responder = lambda request: fence(
        "FINAL(str(context_0 is context) + ' ' + str(history))"
    )
    record = wait_done(stack_client, submit(stack_client, user_query="q", context="solo input"))
    assert record["status"] == "succeeded", record
    assert record["final_answer"] == "True []"
