"""Executions against a broker nobody consumes: submission, listing, reading, cancelling."""

from __future__ import annotations

import io
import json
import time

from tests.api.conftest import make_app, queued_messages


def submit(client, **body) -> dict:
    response = client.post("/api/execute", json={"user_query": "What dates?", "context": "text", **body})
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def test_submitting_answers_202_at_once_and_enqueues_the_id(client, broker):
    started = time.monotonic()
    response = client.post("/api/execute", json={"user_query": "What dates?", "context": "a text"})
    assert time.monotonic() - started < 2
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "queued" and body["id"] == body["execution_id"]
    assert body["user_query"] == "What dates?" and body["final_answer"] is None  # the record itself
    assert response.headers["Location"] == body["links"]["self"] == f"/api/executions/{body['execution_id']}"
    assert set(body["links"]) == {"self", "trace", "events", "cancel", "dashboard"}
    assert queued_messages(broker) == 1
    message = broker.lindex("rlm.root", 0).decode()
    assert body["execution_id"] in message and "a text" not in message  # ids travel, contexts do not


def test_options_merge_over_the_settings_defaults(client, open_app):
    execution_id = submit(client, options={"max_iterations": 3, "max_cost_usd": 0.25})["execution_id"]
    record = client.get(f"/api/executions/{execution_id}").get_json()
    settings = open_app.config["RLM_SETTINGS"]
    assert record["options"]["max_iterations"] == 3 and record["options"]["max_cost_usd"] == 0.25
    assert record["options"]["chunk_size"] == settings.default_chunk_size
    assert record["root_model"] == "openai/scripted-root"
    assert record["status"] == "queued" and record["final_answer"] is None


def test_allowed_models_with_a_key_are_accepted(client, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")  # the default allow-list then has anthropic/*
    execution_id = submit(client, model="anthropic/claude-3-5-haiku-latest", sub_model="openai/gpt-4o-mini")[
        "execution_id"
    ]
    record = _get(client, execution_id)
    assert (record["root_model"], record["sub_model"]) == (
        "anthropic/claude-3-5-haiku-latest",
        "openai/gpt-4o-mini",
    )


def _get(client, execution_id: str) -> dict:
    return client.get(f"/api/executions/{execution_id}").get_json()


def test_an_execution_over_a_session_uses_its_context(client):
    session = client.post("/api/sessions", json={"name": "s", "context": "session text"}).get_json()
    record = _get(client, submit(client, context=None, session_id=session["id"])["execution_id"])
    assert record["session_id"] == session["id"] and record["context_id"] == session["context_id"]
    unknown = client.post("/api/execute", json={"user_query": "q", "session_id": "0" * 32})
    assert unknown.status_code == 404


def test_execute_accepts_text_and_multipart_bodies(client):
    plain = client.post(
        "/api/execute?user_query=Which+ports%3F&options=%7B%22max_iterations%22%3A+4%7D",
        data="port log",
        content_type="text/plain",
    )
    assert plain.status_code == 202, plain.get_json()
    assert _get(client, plain.get_json()["execution_id"])["options"]["max_iterations"] == 4
    upload = client.post(
        "/api/execute",
        data={
            "user_query": "Which ports?",
            "options": json.dumps({"max_recursion_depth": 1}),
            "context": (io.BytesIO(b"port log"), "log.txt"),
        },
        content_type="multipart/form-data",
    )
    assert upload.status_code == 202, upload.get_json()
    record = _get(client, upload.get_json()["execution_id"])
    assert record["options"]["max_recursion_depth"] == 1
    assert record["context_id"] == _get(client, plain.get_json()["execution_id"])["context_id"]
    bad = client.post(
        "/api/execute",
        data={"user_query": "q", "options": "{oops", "context": "x"},
        content_type="multipart/form-data",
    )
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "malformed_json"


def test_wait_returns_202_when_nothing_finishes_in_time(client):
    started = time.monotonic()
    response = client.post("/api/execute", json={"user_query": "q", "context": "c", "wait": 30})
    assert response.status_code == 202
    assert time.monotonic() - started < 5  # the server caps `wait` (API_MAX_WAIT_SECONDS = 0.3 here)


def test_executions_are_listed_newest_first_and_filtered(client):
    session = client.post("/api/sessions", json={"name": "s", "context": "c"}).get_json()
    in_session = [submit(client, context=None, session_id=session["id"])["execution_id"] for _ in range(2)]
    alone = [submit(client)["execution_id"] for _ in range(3)]
    client.post(f"/api/executions/{alone[0]}/cancel")
    everything = client.get("/api/executions?limit=200").get_json()
    assert [e["id"] for e in everything["items"]] == (in_session + alone)[::-1]
    assert everything["next_cursor"] is None
    by_session = client.get(f"/api/executions?session_id={session['id']}").get_json()["items"]
    assert [e["id"] for e in by_session] == in_session[::-1]
    cancelled = client.get("/api/executions?status=cancelled").get_json()["items"]
    assert [e["id"] for e in cancelled] == [alone[0]]
    first = client.get("/api/executions?limit=4").get_json()
    rest = client.get(f"/api/executions?limit=4&cursor={first['next_cursor']}").get_json()
    assert [e["id"] for e in first["items"] + rest["items"]] == (in_session + alone)[::-1]
    assert rest["next_cursor"] is None


def test_cancelling_a_queued_execution_then_again(client):
    execution_id = submit(client)["execution_id"]
    response = client.post(f"/api/executions/{execution_id}/cancel")
    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled" and response.get_json()["finished_at"]
    again = client.post(f"/api/executions/{execution_id}/cancel")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "conflict"


def test_a_queued_execution_has_an_empty_trace(client):
    execution_id = submit(client)["execution_id"]
    assert client.get(f"/api/executions/{execution_id}/trace").get_json() == {
        "execution_id": execution_id,
        "nodes": [],
    }


def test_events_of_an_execution_that_never_runs_end_at_the_max_duration(client):
    execution_id = submit(client)["execution_id"]
    response = client.get(f"/api/executions/{execution_id}/events")
    assert response.mimetype == "text/event-stream"
    text = response.get_data(as_text=True)  # API_EVENTS_MAX_SECONDS = 2 in these tests
    assert "event: status" in text and '"status": "queued"' in text
    assert text.rstrip().split("\n\n")[-1].startswith("event: timeout")


def test_stats_count_by_status(client):
    submit(client)
    cancelled = submit(client)["execution_id"]
    client.post(f"/api/executions/{cancelled}/cancel")
    stats = client.get("/api/stats").get_json()
    assert stats["executions"] == 2
    assert stats["by_status"]["queued"] == 1 and stats["by_status"]["cancelled"] == 1
    assert stats["by_model"] == [] and stats["total_cost_usd"] == 0


def test_health_reports_the_database_the_broker_and_no_workers(client):
    body = client.get("/api/health").get_json()
    assert body["database"]["ok"] and body["broker"]["ok"]
    assert body["workers"] == {"rlm.root": 0, "rlm.llm": 0} and body["status"] == "degraded"


def test_health_answers_503_quickly_when_the_broker_is_down(api_db_url):
    app = make_app(api_db_url, celery_broker_url="redis://127.0.0.1:1/0")
    started = time.monotonic()
    response = app.test_client().get("/api/health")
    assert time.monotonic() - started < 10
    body = response.get_json()
    assert response.status_code == 503 and body["status"] == "down"
    assert body["database"]["ok"] and not body["broker"]["ok"] and "127.0.0.1:1" not in json.dumps(body)


def test_stats_count_cancelled_sub_calls_apart_and_runs_without_an_answer(client, open_app):
    """#32: by-model calls counted sub-calls cancelled before an answer; no-answer runs hid in "succeeded"."""
    from rlm_api.database import db
    from rlm_shared.contexts import store_context
    from rlm_shared.models import Execution, TraceNode

    with open_app.app_context():
        context_id = store_context("text").id
        execution = Execution(
            context_id=context_id, user_query="q", root_model="m", sub_model="s", options={},
            status="succeeded", final_answer="NONE", answer_found=False,
        )  # fmt: skip
        db.session.add(execution)
        db.session.flush()
        for i, status in enumerate(("succeeded", "failed", "cancelled", "cancelled")):
            db.session.add(
                TraceNode(
                    id=f"{i:032d}", execution_id=execution.id, kind="llm_call", path=f"0.{i}", model="s",
                    status=status, input_tokens=1, output_tokens=1,
                )
            )  # fmt: skip
        db.session.add(
            TraceNode(
                id="9" * 32, execution_id=execution.id, kind="iteration", path="0", model="m", response="x"
            )
        )
        db.session.commit()
    stats = client.get("/api/stats").get_json()
    by_model = {row["model"]: row for row in stats["by_model"]}
    assert (by_model["s"]["calls"], by_model["s"]["cancelled_calls"]) == (2, 2)
    assert (by_model["m"]["calls"], by_model["m"]["cancelled_calls"]) == (1, 0)
    assert stats["no_answer_found"] == 1 and stats["by_status"]["succeeded"] == 1
