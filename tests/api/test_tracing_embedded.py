"""OpenTelemetry in embedded mode: the execution runs on a thread of the API process, and its
node spans continue the request's trace (the thread starts in the request's context)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from rlm_shared import tracing
from rlm_shared.config import get_settings
from rlm_worker import services
from tests.api.conftest import make_app
from tests.distributed.test_tracing import FINISHED, _from_sdk, _responder
from tests.support.services import wait_for

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402


@pytest.fixture()
def embedded_model(scripted, monkeypatch):
    """The embedded runner's model client comes from the environment, as a worker's does."""
    monkeypatch.setenv("LLM_API_BASE", scripted.url)
    monkeypatch.setenv("LLM_API_KEY", "scripted")
    for cached in (get_settings, services.model_client):
        cached.cache_clear()
    yield scripted
    for cached in (get_settings, services.model_client):
        cached.cache_clear()


def test_an_embedded_execution_is_one_trace_from_its_request(api_db_url, embedded_model):
    app = make_app(
        api_db_url,
        config={"RLM_DISPATCH": "embedded"},
        llm_api_base=embedded_model.url,
        llm_api_key="scripted",
        default_model="openai/scripted-root",
    )
    exporter = InMemorySpanExporter()
    tracing.setup(app, exporter=exporter)
    try:
        embedded_model.responder = _responder
        client = app.test_client()
        response = client.post("/api/execute", json={"user_query": "trace me", "context": "some text"})
        assert response.status_code == 202, response.get_json()
        execution_id = response.get_json()["id"]
        body = wait_for(
            lambda: (
                (b := client.get(f"/api/executions/{execution_id}").get_json())["status"] in FINISHED and b
            ),
            90,
            what="the execution",
        )
        assert body["status"] == "succeeded", body
        with app.app_context():
            from rlm_api.database import db
            from rlm_shared.models import TraceNode

            query = sa.select(TraceNode).where(TraceNode.execution_id == execution_id)
            nodes = {n.id: n for n in db.session.execute(query).scalars()}
        spans = wait_for(
            lambda: (
                (s := [_from_sdk(x, "api") for x in exporter.get_finished_spans()])
                and {a["attributes"].get("rlm.node.id") for a in s} >= set(nodes)
                and s
            ),
            30,
            what="every node's span",
        )
    finally:
        tracing.shutdown(app)
    span_of = {s["attributes"]["rlm.node.id"]: s for s in spans if "rlm.node.id" in s["attributes"]}
    by_id = {s["span_id"]: s for s in spans}
    request = next(s for s in spans if s["name"] == "POST /api/execute")
    assert {span_of[n]["trace_id"] for n in nodes} == {request["trace_id"]}
    for node_id, node in nodes.items():
        parent = by_id[span_of[node_id]["parent_id"]]
        expected = request["span_id"] if node.parent_id is None else span_of[node.parent_id]["span_id"]
        assert parent["span_id"] == expected, (node.kind, node.path)
        assert span_of[node_id]["attributes"]["gen_ai.usage.input_tokens"] == node.input_tokens
    assert {n.kind for n in nodes.values()} >= {"root", "iteration", "code", "llm_call", "child_rlm"}
    assert not tracing.is_on() and tracing.node_spans is None
