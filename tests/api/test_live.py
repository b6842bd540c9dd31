"""The API over real Celery workers and the scripted model: wait, live events, cancel, stats, health."""

from __future__ import annotations

import json

from tests.support.scripted_model import turn_index
from tests.support.services import wait_for

CONTEXT = "filler text. " * 400 + "The secret code is QX-4417. " + "more filler. " * 400


def is_root(request) -> bool:
    messages = request.get("messages", [])
    return any(
        "Recursive Language Model" in str(m.get("content", "")) for m in messages if m.get("role") == "system"
    )


def read_events(response) -> list[tuple[str, dict]]:
    """Parse an SSE body into (event, data) pairs, comments and `retry:` lines skipped."""
    events = []
    for block in response.get_data(as_text=True).split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":")
        )
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_wait_returns_the_finished_execution(stack_client, scripted):
    response = stack_client.post(
        "/api/execute", json={"user_query": "What is the secret code?", "context": CONTEXT, "wait": 30}
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "succeeded" and body["final_answer"] == "QX-4417"
    assert body["total_input_tokens"] > 0 and body["llm_calls"] >= 2
    assert body["id"] == body["execution_id"]  # one name, and the first version's alias


def test_events_stream_status_and_nodes_until_the_end(stack_client, scripted):
    scripted.latency = 0.3  # long enough that the stream sees the run in progress
    started = stack_client.post(
        "/api/execute", json={"user_query": "What is the secret code?", "context": CONTEXT}
    )
    execution_id = started.get_json()["execution_id"]
    response = stack_client.get(f"/api/executions/{execution_id}/events")
    assert response.mimetype == "text/event-stream" and response.headers["Cache-Control"] == "no-cache"
    events = read_events(response)

    kinds = [kind for kind, _ in events]
    statuses = [data["status"] for kind, data in events if kind == "status"]
    assert kinds[-1] == "end" and events[-1][1]["status"] == "succeeded"
    assert events[-1][1]["final_answer"] == "QX-4417"
    assert "running" in statuses and statuses[-1] == "succeeded"
    streamed = {data["id"]: data for kind, data in events if kind == "node"}
    trace = stack_client.get(f"/api/executions/{execution_id}/trace").get_json()["nodes"]
    assert set(streamed) == {node["id"] for node in trace}
    assert {node["kind"] for node in streamed.values()} >= {"root", "iteration", "code", "llm_call"}
    assert all("prompt" not in node and "response" not in node for node in streamed.values())
    # a node seen running is sent again when it finishes
    root_updates = [data["status"] for kind, data in events if kind == "node" and data["kind"] == "root"]
    assert root_updates[0] == "running" and root_updates[-1] == "succeeded"


def test_cancel_stops_a_running_execution(stack_client, scripted):
    def responder(request):
        if is_root(request):
            return (
                "```repl\nfor i in range(1000):\n    print(llm_query(f'step {i}'))\n```"
                if turn_index(request) == 0
                else "FINAL(done)"
            )
        return "ok"

    scripted.responder, scripted.latency = responder, 0.05
    execution_id = stack_client.post("/api/execute", json={"user_query": "loop", "context": "c"}).get_json()[
        "execution_id"
    ]

    def sub_calls_made():
        nodes = stack_client.get(f"/api/executions/{execution_id}/trace").get_json()["nodes"]
        return sum(1 for n in nodes if n["kind"] == "llm_call") >= 3

    wait_for(sub_calls_made, timeout=60, what="the execution to make sub-calls")
    response = stack_client.post(f"/api/executions/{execution_id}/cancel")
    assert response.status_code == 200 and response.get_json()["status"] == "cancelled"

    def finished():
        body = stack_client.get(f"/api/executions/{execution_id}").get_json()
        root = stack_client.get(f"/api/executions/{execution_id}/trace").get_json()["nodes"][0]
        return body if root["status"] != "running" else None

    record = wait_for(finished, timeout=60, what="the worker to stop the execution")
    assert record["status"] == "cancelled"
    nodes = stack_client.get(f"/api/executions/{execution_id}/trace").get_json()["nodes"]
    assert sum(1 for n in nodes if n["kind"] == "llm_call") < 1000  # the loop did not run to its end
    again = stack_client.post(f"/api/executions/{execution_id}/cancel")
    assert again.status_code == 409


def test_stats_count_tokens_and_cost_per_model(stack_client, scripted):
    response = stack_client.post(
        "/api/execute", json={"user_query": "What is the secret code?", "context": CONTEXT, "wait": 30}
    )
    assert response.status_code == 200
    stats = stack_client.get("/api/stats").get_json()
    by_model = {row["model"]: row for row in stats["by_model"]}
    assert by_model["openai/scripted-root"]["calls"] >= 1 and by_model["openai/scripted-root"]["cost_usd"] > 0
    assert by_model["openai/scripted-sub"]["calls"] >= 1
    assert stats["by_status"]["succeeded"] >= 1 and stats["total_cost_usd"] > 0


def test_health_counts_live_workers_per_queue(stack_client):
    body = stack_client.get("/api/health").get_json()
    assert body["status"] == "ok" and body["dispatch"] == "celery"
    assert body["workers"]["rlm.root"] >= 1 and body["workers"]["rlm.llm"] >= 1
