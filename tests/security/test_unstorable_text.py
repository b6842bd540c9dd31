"""Text Postgres refuses (NUL, lone surrogates) where it enters, on the real stack (issue 30).

From a client it is refused with a 4xx naming the field (API JSON, form posts, `/v1`, MCP); from a
run (print, FINAL, a prompt, a memory block, a session variable) it is replaced by U+FFFD and the
trace says so; a database error's own text never reaches a tenant, and an execution whose outcome
cannot be stored ends `failed` rather than `running` forever.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from rlm_api.database import db
from tests.security.test_session_variables import _finished, _root_node

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
RUN_CODE = """\
print("printed\\x00nul and a lone \\ud800 surrogate")
memory.append("notes", "noted\\x00here")
reply = llm_query("prompt with\\x00nul")
kept = "variable\\x00value"
FINAL("answer\\x00with nul \\udfff")
"""


def _raw_post(client, path: str, body: str, **kw):
    return client.post(path, data=body.encode(), content_type="application/json", **kw)


def test_clients_are_refused_naming_the_field(stack_client):
    refused = _raw_post(
        stack_client, "/api/execute", '{"user_query": "q", "context": "c", "model": "openai/x\\u0000y"}'
    )
    assert refused.status_code == 422, refused.get_json()
    error = refused.get_json()["error"]
    assert error["code"] == "invalid_field" and error["details"][0]["field"] == "model"
    assert "NUL" in error["message"]

    memory = _raw_post(
        stack_client, "/api/sessions", '{"name": "s", "context": "c", "memory": {"notes": "a\\u0000b"}}'
    )
    assert memory.status_code == 422 and memory.get_json()["error"]["details"][0]["field"] == "memory.notes"

    chat = _raw_post(
        stack_client,
        "/v1/chat/completions",
        '{"model": "rlm", "messages": [{"role": "system", "content": "doc"},'
        ' {"role": "user", "content": "lone \\ud800 surrogate"}]}',
    )
    assert chat.status_code == 400, chat.get_json()
    assert chat.get_json()["error"]["param"] == "messages.1.content"
    assert "surrogate" in chat.get_json()["error"]["message"]

    form = stack_client.post("/sessions", data={"name": "a\x00b", "context": "some text"})
    assert form.status_code == 400 and "NUL" in form.get_data(as_text=True)

    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "ask_about_text", "arguments": {"question": "q\u0000", "text": "t", "wait_seconds": 0}},
    }
    mcp = stack_client.post("/mcp", data=json.dumps(message), headers=MCP_HEADERS)
    data = [line[5:] for line in mcp.get_data(as_text=True).splitlines() if line.startswith("data:")]
    result = json.loads(data[-1])["result"]
    assert result["isError"] is True and "user_query" in result["content"][0]["text"], result  # as the API names it
    assert "NUL" in result["content"][0]["text"]


def test_a_run_writing_nul_and_surrogates_succeeds_and_the_trace_says_so(stack_client, scripted):
    session = stack_client.post("/api/sessions", json={"name": "nul", "context": "some text"}).get_json()
    started = stack_client.post(
        "/api/execute", json={"user_query": "q", "session_id": session["id"], "root_code": RUN_CODE}
    ).get_json()
    record = _finished(stack_client, started["execution_id"])
    assert record["status"] == "succeeded", record
    assert record["final_answer"] == "answer\ufffdwith nul \ufffd"

    nodes = stack_client.get(f"/api/executions/{started['execution_id']}/trace").get_json()["nodes"]
    code = next(n for n in nodes if n["kind"] == "code")
    assert "printed\ufffdnul and a lone \ufffd surrogate" in code["stdout"]
    assert "replaced by U+FFFD" in code["stderr"]
    call = next(n for n in nodes if n["kind"] == "llm_call")
    assert call["prompt"] == "prompt with\ufffdnul" and "replaced by U+FFFD" in call["stderr"]
    assert "replaced by U+FFFD" in _root_node(stack_client, started["execution_id"])["stderr"]

    stored = stack_client.get(f"/api/sessions/{session['id']}").get_json()
    assert stored["variables"]["kept"] == "variable\ufffdvalue"
    assert stored["memory"]["notes"].endswith("noted\ufffdhere")


@pytest.fixture()
def refusing_triggers(stack_app):
    """Postgres itself refusing two writes (as it refused NUL), with SQL in its message: a
    trace node whose stdout holds a marker, and an outcome whose answer holds another."""
    statements = [
        """CREATE OR REPLACE FUNCTION refuse_marked_node() RETURNS trigger AS $$
        BEGIN
          IF NEW.stdout LIKE '%refuse-this-node%' THEN
            RAISE EXCEPTION 'invalid byte sequence [SQL: INSERT INTO trace_nodes secret-schema]';
          END IF;
          RETURN NEW;
        END $$ LANGUAGE plpgsql""",
        """CREATE OR REPLACE FUNCTION refuse_marked_outcome() RETURNS trigger AS $$
        BEGIN
          IF NEW.final_answer = 'refuse-this-outcome' THEN
            RAISE EXCEPTION 'invalid byte sequence [SQL: UPDATE executions secret-schema]';
          END IF;
          RETURN NEW;
        END $$ LANGUAGE plpgsql""",
        "CREATE TRIGGER refuse_nodes BEFORE INSERT OR UPDATE ON trace_nodes"
        " FOR EACH ROW EXECUTE FUNCTION refuse_marked_node()",
        "CREATE TRIGGER refuse_outcomes BEFORE UPDATE ON executions"
        " FOR EACH ROW EXECUTE FUNCTION refuse_marked_outcome()",
    ]
    with stack_app.app_context():
        with db.engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    try:
        yield
    finally:
        with stack_app.app_context():
            with db.engine.begin() as conn:
                conn.execute(sa.text("DROP TRIGGER IF EXISTS refuse_nodes ON trace_nodes"))
                conn.execute(sa.text("DROP TRIGGER IF EXISTS refuse_outcomes ON executions"))
                conn.execute(sa.text("DROP FUNCTION IF EXISTS refuse_marked_node()"))
                conn.execute(sa.text("DROP FUNCTION IF EXISTS refuse_marked_outcome()"))


def test_a_failed_write_ends_the_run_failed_without_the_databases_words(stack_client, refusing_triggers):
    for code, marker in (
        ("print('refuse-this-node')\nFINAL('never')", "refuse-this-node"),
        ("FINAL('refuse-this-outcome')", "refuse-this-outcome"),
    ):
        started = stack_client.post(
            "/api/execute", json={"user_query": "q", "context": "c", "root_code": code}
        ).get_json()
        record = _finished(stack_client, started["execution_id"])  # not `running` forever
        assert record["status"] == "failed", (marker, record)
        assert "internal error" in record["error"] and "the worker's log" in record["error"], record
        page = stack_client.get(f"/executions/{started['execution_id']}").get_data(as_text=True)
        trace = stack_client.get(f"/api/executions/{started['execution_id']}/trace").get_data(as_text=True)
        for seen in (json.dumps(record), page, trace):
            assert "[SQL:" not in seen and "secret-schema" not in seen
