"""One quota (API_MAX_ACTIVE_EXECUTIONS) and one request rate for every way a run is started:
`POST /api/execute`, the dashboard's form, `/v1/chat/completions` and the MCP tools (issue 30)."""

from __future__ import annotations

import json

import sqlalchemy as sa

from rlm_api.auth import token_hash
from rlm_api.database import db
from rlm_shared.contexts import store_context
from rlm_shared.models import Execution, Session
from tests.api.conftest import ALICE, BOB, bearer, make_app
from tests.api.test_auth import csrf_of

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _fill_quota(app, token: str, count: int) -> str:
    """`count` executions of `token` already running, and a session of it with a context."""
    owner = token_hash(token)
    with app.app_context():
        context_id = store_context("The ship came to anchor in Table Bay.", owner=owner).id
        session = Session(name="quota", context_id=context_id, memory={}, variables={}, owner=owner)
        db.session.add(session)
        for _ in range(count):
            db.session.add(
                Execution(
                    context_id=context_id, user_query="q", root_model="openai/scripted-root",
                    sub_model="openai/scripted-root", options={}, status="running", owner=owner,
                )
            )
        db.session.commit()
        return session.id


def _active(app, token: str) -> int:
    with app.app_context():
        return db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Execution)
            .where(Execution.owner == token_hash(token), Execution.status.in_(("queued", "running")))
        )


def _mcp_call(client, token: str, tool: str, arguments: dict) -> dict:
    """One `tools/call` through the real MCP endpoint (the SDK's stateless Streamable HTTP)."""
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    response = client.post("/mcp", data=json.dumps(message), headers={**MCP_HEADERS, **bearer(token)})
    assert response.status_code == 200, response.get_data(as_text=True)
    data = [line[5:] for line in response.get_data(as_text=True).splitlines() if line.startswith("data:")]
    return json.loads(data[-1])["result"]


def _dashboard_login(client, token: str) -> None:
    client.post("/login", data={"token": token, "csrf_token": csrf_of(client.get("/login").text)})


def test_every_way_in_refuses_a_run_over_the_quota(token_client, token_app):
    limit = 2  # token_app's API_MAX_ACTIVE_EXECUTIONS
    session_id = _fill_quota(token_app, ALICE, limit)

    api = token_client.post("/api/execute", json={"user_query": "q", "context": "c"}, headers=bearer(ALICE))
    assert api.status_code == 429 and api.get_json()["error"]["code"] == "quota_exceeded"

    chat = token_client.post(
        "/v1/chat/completions",
        json={
            "model": "rlm",
            "messages": [
                {"role": "system", "content": "The ship came to anchor in Table Bay."},
                {"role": "user", "content": "Where did the ship anchor?"},
            ],
        },
        headers=bearer(ALICE),
    )
    assert chat.status_code == 429, chat.get_json()
    assert "limit is 2" in json.dumps(chat.get_json())

    result = _mcp_call(
        token_client, ALICE, "ask_about_text", {"question": "Where?", "text": "Table Bay.", "wait_seconds": 0}
    )
    assert result["isError"] is True and "limit is 2" in result["content"][0]["text"], result

    form_client = token_app.test_client()
    _dashboard_login(form_client, ALICE)
    page = form_client.get(f"/sessions/{session_id}").text
    posted = form_client.post(
        f"/sessions/{session_id}/executions", data={"user_query": "Where?", "csrf_token": csrf_of(page)}
    )
    assert posted.status_code == 429 and "limit is 2" in posted.text

    assert _active(token_app, ALICE) == limit  # nothing was started by any of the four
    # another token is not held back by Alice's runs, through the form either
    bob_session = _fill_quota(token_app, BOB, 0)
    bob_client = token_app.test_client()
    _dashboard_login(bob_client, BOB)
    page = bob_client.get(f"/sessions/{bob_session}").text
    started = bob_client.post(
        f"/sessions/{bob_session}/executions", data={"user_query": "Where?", "csrf_token": csrf_of(page)}
    )
    assert started.status_code == 303 and _active(token_app, BOB) == 1


def test_dashboard_form_posts_count_against_the_tokens_request_rate(api_db_url, broker, clean):
    broker.flushdb()
    app = make_app(api_db_url, api_tokens=f"{ALICE},{BOB}", api_rate_limit="4/minute")
    session_id = _fill_quota(app, ALICE, 0)
    client = app.test_client()
    _dashboard_login(client, ALICE)
    page = client.get(f"/sessions/{session_id}").text
    statuses = [
        client.post(
            f"/sessions/{session_id}/executions", data={"user_query": "q", "csrf_token": csrf_of(page)}
        ).status_code
        for _ in range(5)
    ]
    assert statuses[:4] == [303] * 4 and statuses[4] == 429, statuses
    # and the API shares the same count for that token
    assert client.get("/api/stats", headers=bearer(ALICE)).status_code == 429
