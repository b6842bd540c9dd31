"""Executions without a root model: `strategy`/`root_code` at the top level or in `options`, and the
local sub-model's defaults."""

from __future__ import annotations

import pytest

from rlm_shared.strategies import LOCAL_CHUNK_SIZE
from rlm_worker.engine import local_model
from tests.support.services import wait_for

CONTEXT = "filler text. " * 200 + "The secret code is QX-4417. " + "more filler. " * 200


def submit(client, **body):
    return client.post(
        "/api/execute", json={"user_query": "What is the secret code?", "context": "t", **body}
    )


def record_of(client, response) -> dict:
    assert response.status_code == 202, response.get_json()
    return client.get(f"/api/executions/{response.get_json()['execution_id']}").get_json()


def test_top_level_strategy_and_root_code_land_in_the_options(client):
    record = record_of(client, submit(client, strategy="find", options={"max_iterations": 3}))
    assert record["options"]["strategy"] == "find" and record["options"]["max_iterations"] == 3
    assert record["options"]["root_code"] is None

    record = record_of(client, submit(client, root_code="FINAL('x')", options={"strategy": "search"}))
    assert record["options"]["root_code"] == "FINAL('x')" and record["options"]["strategy"] == "search"

    record = record_of(client, submit(client, strategy="map_reduce", options={"strategy": "find"}))
    assert record["options"]["strategy"] == "map_reduce"  # the top-level shorthand wins


def test_unknown_strategy_and_oversized_root_code_are_422(client):
    for body in (
        {"strategy": "guess"},
        {"options": {"strategy": "guess"}},
        {"root_code": "x" * 200_001},
        {"strategy": 3},
    ):
        response = submit(client, **body)
        assert response.status_code == 422, (body, response.get_json())
        assert response.get_json()["error"]["code"] == "invalid_field"


def test_a_local_sub_model_is_accepted_and_reads_short_chunks(client, open_app):
    record = record_of(client, submit(client, sub_model="local/smollm2", strategy="search"))
    assert record["sub_model"] == "local/smollm2" and record["options"]["chunk_size"] == LOCAL_CHUNK_SIZE

    record = record_of(client, submit(client, model="local/smollm2", strategy="search"))  # sub-calls: the root model's
    assert record["root_model"] == "local/smollm2" and record["options"]["chunk_size"] == LOCAL_CHUNK_SIZE

    record = record_of(client, submit(client, sub_model="local/smollm2", options={"chunk_size": 4000}))
    assert record["options"]["chunk_size"] == 4000  # the request's own choice wins

    record = record_of(client, submit(client, sub_model="openai/gpt-4o-mini"))
    assert record["options"]["chunk_size"] == open_app.config["RLM_SETTINGS"].default_chunk_size


def test_root_code_runs_without_calling_the_root_model(stack_client, scripted):
    program = 'answers = llm_query_batched(["Find it: " + context[-3000:]])\nFINAL(answers[0])'
    response = stack_client.post(
        "/api/execute",
        json={"user_query": "What is the secret code?", "context": CONTEXT, "root_code": program, "wait": 30},
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "succeeded" and body["final_answer"] == "QX-4417"
    assert body["options"]["root_code"] == program
    assert body["root_model"] == "(root_code)"  # no model was asked, so none is named
    assert body["sub_model"] == "openai/scripted-sub"
    by_model = scripted.stats()["by_model"]
    assert by_model.get("scripted-sub") == 1 and "scripted-root" not in by_model, by_model

    nodes = stack_client.get(f"/api/executions/{body['id']}/trace").get_json()["nodes"]
    (iteration,) = [n for n in nodes if n["kind"] == "iteration"]
    assert "no root model" in iteration["model"] and "no root model" in iteration["prompt"]
    assert any(n["kind"] == "code" and n["code"] == program for n in nodes)


def test_a_strategy_runs_without_calling_the_root_model(stack_client, scripted):
    response = stack_client.post(
        "/api/execute",
        json={"user_query": "What is the secret code?", "context": CONTEXT, "strategy": "find"},
    )
    execution_id = response.get_json()["execution_id"]
    wait_for(
        lambda: (
            stack_client.get(f"/api/executions/{execution_id}").get_json()["status"]
            not in ("queued", "running")
        ),
        timeout=30,
    )
    record = stack_client.get(f"/api/executions/{execution_id}").get_json()
    assert record["status"] == "succeeded", record
    assert record["root_model"] == "(strategy find)"
    by_model = scripted.stats()["by_model"]
    assert "scripted-root" not in by_model and by_model.get("scripted-sub", 0) >= 1, by_model
    nodes = stack_client.get(f"/api/executions/{execution_id}/trace").get_json()["nodes"]
    assert any(n["kind"] == "iteration" and "strategy find: no root model" in n["model"] for n in nodes)


@pytest.mark.skipif(not local_model.available(), reason="the local model is not installed")
def test_with_no_provider_the_api_runs_the_same_offline_plan_as_the_cli(api_db_url, broker, monkeypatch):
    """`POST /api/execute` as docs/api.md shows it, on a server with no provider configured: the
    offline plan of `rlm run` (local model, `search` strategy), and the record says so."""
    from tests.api.conftest import make_app

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    app = make_app(api_db_url, llm_api_base=None, default_model="openai/gpt-4o-mini")
    client = app.test_client()
    record = record_of(client, submit(client))
    assert record["offline"] is True
    assert (record["root_model"], record["sub_model"]) == (
        "(strategy search)",
        local_model.DEFAULT_LOCAL_MODEL,
    )
    assert record["options"]["strategy"] == "search" and record["options"]["chunk_size"] == LOCAL_CHUNK_SIZE
    # A strategy of the user's own is kept; a model of the user's own means no offline plan, and
    # one whose key is missing is refused at once, saying which variable to set.
    record = record_of(client, submit(client, strategy="find"))
    assert record["offline"] is True and record["options"]["strategy"] == "find"
    refused = submit(client, model="openai/gpt-4o-mini")
    assert refused.status_code == 422 and refused.get_json()["error"]["code"] == "missing_api_key"
