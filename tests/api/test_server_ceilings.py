"""Limits that hold at every entry point (issue 30): a new session's memory keeps the engine's
limits, and a request may raise a guard only up to the server's ceiling (`CEILING_*`)."""

from __future__ import annotations

import pytest

from tests.api.conftest import make_app


def test_a_new_session_keeps_the_memory_limits(client):
    # the red team sent 100 blocks of 100,000 characters (this app's body limit is smaller)
    many = {f"block{i}": "x" * 1000 for i in range(100)}
    refused = client.post("/api/sessions", json={"name": "big", "context": "c", "memory": many})
    assert refused.status_code == 422, refused.get_json()
    error = refused.get_json()["error"]
    assert error["details"][0]["field"] == "memory" and "at most 32" in error["message"]
    one_big = client.post(
        "/api/sessions", json={"name": "big", "context": "c", "memory": {"notes": "x" * 20_001}}
    )
    assert one_big.status_code == 422 and "the limit is 20,000" in one_big.get_json()["error"]["message"]
    fits = client.post("/api/sessions", json={"name": "ok", "context": "c", "memory": {"notes": "x" * 20_000}})
    assert fits.status_code == 201


@pytest.mark.parametrize(
    ("option", "value", "setting"),
    [
        ("max_sub_calls", 1_000_000, "CEILING_MAX_SUB_CALLS"),
        ("timeout_seconds", 86_400, "CEILING_TIMEOUT_SECONDS"),
        ("max_iterations", 1000, "CEILING_MAX_ITERATIONS"),
        ("max_cost_usd", 10_000, "CEILING_MAX_COST_USD"),
        ("max_tool_calls", 5_000, "CEILING_MAX_TOOL_CALLS"),
        ("max_ranking_seconds", 3_000, "CEILING_MAX_RANKING_SECONDS"),
        ("max_concurrent_subcalls", 1_000, "MAX_CONCURRENT_SUBCALLS_CEILING"),
    ],
)
def test_a_guard_above_the_servers_ceiling_is_refused(client, option, value, setting):
    body = {"user_query": "q", "context": "c", "options": {option: value}}
    refused = client.post("/api/execute", json=body)
    assert refused.status_code == 422, refused.get_json()
    error = refused.get_json()["error"]
    assert error["details"][0]["field"] == f"options.{option}" and setting in error["message"]


def test_ceilings_are_settings_and_lower_values_pass(api_db_url, broker, clean):
    client = make_app(api_db_url, ceiling_max_sub_calls=50).test_client()
    over = client.post("/api/execute", json={"user_query": "q", "context": "c", "options": {"max_sub_calls": 51}})
    assert over.status_code == 422 and "at most 50" in over.get_json()["error"]["message"]
    under = client.post("/api/execute", json={"user_query": "q", "context": "c", "options": {"max_sub_calls": 50}})
    assert under.status_code == 202, under.get_json()


def test_the_dashboard_form_keeps_the_ceilings(client):
    created = client.post("/sessions", data={"name": "form", "context": "some text"})
    session_path = created.headers["Location"]
    posted = client.post(f"{session_path}/executions", data={"user_query": "q", "max_iterations": "1000"})
    assert posted.status_code == 400 and "CEILING_MAX_ITERATIONS" in posted.get_data(as_text=True)
