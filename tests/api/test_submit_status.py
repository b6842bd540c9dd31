"""What `POST /api/execute` answers while the execution runs: its real status, not a stale one.

Embedded dispatch (the runner on threads of this process, as under `rlm serve`) and the scripted
model, so a worker has the execution at once and its first model turn is slow.
"""

from __future__ import annotations

import pytest

from rlm_shared.config import get_settings
from rlm_worker import services
from tests.api.conftest import make_app
from tests.support.services import wait_for

CONTEXT = "filler text. " * 200 + "The secret code is QX-4417. " + "more filler. " * 200


@pytest.fixture()
def worker_reaches_the_scripted_model(scripted, monkeypatch):
    """The embedded runner's model client is a per-process singleton built from the environment
    (as a worker's is), not from the app's settings: point it at the scripted model, and drop the
    singletons around the test so no other test's client is reused."""
    monkeypatch.setenv("LLM_API_BASE", scripted.url)
    monkeypatch.setenv("LLM_API_KEY", "scripted")
    for cached in (get_settings, services.model_client):
        cached.cache_clear()
    yield
    for cached in (get_settings, services.model_client):
        cached.cache_clear()


def test_a_wait_that_runs_out_reports_the_real_status(api_db_url, scripted, worker_reaches_the_scripted_model):
    app = make_app(
        api_db_url,
        config={"RLM_DISPATCH": "embedded"},
        llm_api_base=scripted.url,
        llm_api_key="scripted",
        default_model="openai/scripted-root",
    )
    client = app.test_client()
    scripted.latency = 5.0  # the first model turn outlasts the wait
    response = client.post(
        "/api/execute", json={"user_query": "What is the secret code?", "context": CONTEXT, "wait": 2}
    )
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["status"] == "running" and body["started_at"] is not None, body
    assert body["id"] == body["execution_id"] and response.headers["Location"] == body["links"]["self"]

    assert client.post(f"/api/executions/{body['id']}/cancel").status_code == 200
    wait_for(
        lambda: client.get(f"/api/executions/{body['id']}").get_json()["status"] == "cancelled",
        timeout=60,
        what="the cancelled execution to settle",
    )
