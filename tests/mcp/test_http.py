"""`/mcp` on a real running API, through the SDK's Streamable HTTP client: tokens, ownership,
the allow-list, the files root, progress notifications and the agent id."""

from __future__ import annotations

import httpx2
import pytest
from mcp import MCPError

from tests.cli.scripts import program_responder
from tests.mcp.client import call_http, tools_over_http
from tests.mcp.conftest import ALICE, BOB, OUTSIDE_SECRET

TOOLS = {
    "ask_about_text",
    "ask_about_context",
    "ask_about_session",
    "ask_about_files",
    "get_execution",
    "list_executions",
}
#: Three sub-calls one after the other: the run gets further several times while the tool waits.
THREE_STEPS = (
    'a = llm_query("first " + context[:200])\nb = llm_query("second")\nc = llm_query("third")\nFINAL(a)'
)


def api(served, token: str, path: str) -> httpx2.Response:
    return httpx2.get(served.base + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_missing_or_wrong_token_is_refused(served, scripted):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = httpx2.post(
            served.url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={**headers, "Accept": "application/json, text/event-stream"},
            timeout=30,
        )
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
    with pytest.raises(ExceptionGroup) as refused:  # the SDK's client gives up on the 401
        tools_over_http(served.url, "not-a-token")
    assert refused.group_contains(MCPError, match="error response", depth=None)
    assert set(tools_over_http(served.url, ALICE)) == TOOLS


def test_ask_about_text_reports_progress_and_records_the_agent(served, scripted):
    scripted.responder = program_responder(THREE_STEPS, sub="Table Bay")
    scripted.latency = 0.4
    call = call_http(
        served.url,
        ALICE,
        "ask_about_text",
        {"question": "Where did the ship anchor?", "text": "The ship came to anchor in Table Bay. " * 50},
        agent_id="agent-6f0c-letta",
    )
    assert not call.is_error, call.text
    assert call.data["status"] == "succeeded" and call.data["answer"] == "Table Bay"
    assert call.data["agent_id"] == "agent-6f0c-letta"
    assert call.data["trace"]["by_kind"]["llm_call"] == 3
    # Progress came while it ran, growing each time, with the figures `rlm run` prints.
    assert call.progress, "no progress notification arrived"
    values = [p for p, _, _ in call.progress]
    assert values == sorted(set(values))
    assert "sub-calls" in call.progress[-1][2]

    execution_id = call.data["id"]
    record = api(served, ALICE, f"/api/executions/{execution_id}").json()
    assert record["agent_id"] == "agent-6f0c-letta"
    listed = api(served, ALICE, "/api/executions?agent_id=agent-6f0c-letta").json()["items"]
    assert [e["id"] for e in listed] == [execution_id]
    assert api(served, ALICE, "/api/executions?agent_id=someone-else").json()["items"] == []

    mine = call_http(
        served.url, ALICE, "list_executions", {"this_agent_only": True}, agent_id="agent-6f0c-letta"
    )
    assert [e["id"] for e in mine.data["executions"]] == [execution_id]


def test_another_tokens_executions_are_not_visible(served, scripted):
    scripted.responder = program_responder('FINAL(llm_query("x " + context))', sub="ok")
    alice = call_http(served.url, ALICE, "ask_about_text", {"question": "q?", "text": "Alice's text."})
    assert alice.data["status"] == "succeeded", alice.text
    execution_id, context_id = alice.data["id"], None

    seen = call_http(served.url, BOB, "get_execution", {"execution_id": execution_id})
    assert seen.is_error and f"execution {execution_id} not found" in seen.text
    listed = call_http(served.url, BOB, "list_executions", {"limit": 50})
    assert execution_id not in [e["id"] for e in listed.data["executions"]]

    context_id = api(served, ALICE, f"/api/executions/{execution_id}").json()["context_id"]
    again = call_http(served.url, BOB, "ask_about_context", {"question": "q?", "context_id": context_id})
    assert again.is_error and "not found" in again.text
    own = call_http(served.url, ALICE, "ask_about_context", {"question": "again?", "context_id": context_id})
    assert own.data["status"] == "succeeded", own.text


def test_ask_about_a_session(served, scripted):
    scripted.responder = program_responder('FINAL(llm_query("x " + context))', sub="from the session")
    created = httpx2.post(
        served.base + "/api/sessions",
        json={"name": "voyage", "context": "The log of the voyage."},
        headers={"Authorization": f"Bearer {ALICE}"},
        timeout=30,
    ).json()
    call = call_http(
        served.url, ALICE, "ask_about_session", {"question": "What?", "session_id": created["id"]}
    )
    assert call.data["answer"] == "from the session" and call.data["session_id"] == created["id"]
    other = call_http(
        served.url, BOB, "ask_about_session", {"question": "What?", "session_id": created["id"]}
    )
    assert other.is_error and "not found" in other.text


def test_model_outside_the_allow_list_is_refused(served, scripted):
    before = api(served, ALICE, "/api/executions?limit=100").json()["items"]
    call = call_http(
        served.url, ALICE, "ask_about_text", {"question": "q?", "text": "t", "model": "openai/gpt-4o"}
    )
    assert call.is_error and "openai/gpt-4o" in call.text and "MODEL_ALLOWLIST" in call.text
    call = call_http(
        served.url,
        ALICE,
        "ask_about_text",
        {"question": "q?", "text": "t", "sub_model": "anthropic/claude-x"},
    )
    assert call.is_error and "anthropic/claude-x" in call.text
    assert len(api(served, ALICE, "/api/executions?limit=100").json()["items"]) == len(before)


def test_files_only_under_the_root(served, scripted):
    scripted.responder = program_responder('FINAL(llm_query("Read: " + str(context)))', sub="read it")
    call = call_http(served.url, ALICE, "ask_about_files", {"question": "Where?", "path": "report.txt"})
    assert call.data["status"] == "succeeded", call.text
    assert any("came to anchor in Table Bay" in prompt for prompt in scripted.prompts)
    folder = call_http(served.url, ALICE, "ask_about_files", {"question": "What?", "path": "reports"})
    assert folder.data["status"] == "succeeded", folder.text

    for path in (
        "../secret.txt",
        "reports/../../secret.txt",
        str(served.secret),
        "escape.txt",
        "outside/secret.txt",
    ):
        refused = call_http(
            served.url, ALICE, "ask_about_files", {"question": "What is the code?", "path": path}
        )
        assert refused.is_error, (path, refused.text)
        assert "outside the files root" in refused.text, (path, refused.text)
        assert OUTSIDE_SECRET not in refused.text


def test_bad_agent_id_is_refused(served, scripted):
    response = httpx2.post(
        served.base + "/api/execute",
        json={"user_query": "q?", "context": "t"},
        headers={"Authorization": f"Bearer {ALICE}", "X-Agent-Id": "x" * 201},
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_header"
