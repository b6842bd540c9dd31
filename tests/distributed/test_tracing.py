"""OpenTelemetry: one execution is one trace across the API and both workers, shaped like its trace table.

The API runs in this process (Flask test client) and exports to an in-memory exporter; the root
and llm workers are real `celery worker` processes configured only by the standard OTEL_*
variables, exporting OTLP/HTTP to a small collector on loopback that this test runs (the edge).
The spans of both are put together and must form one tree.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from rlm_shared import tracing
from tests.support.services import SCRIPTED_PRICES, CeleryWorker, free_redis_db, wait_for, worker_env

opentelemetry = pytest.importorskip("opentelemetry.sdk")  # the `otel` extra, which the lock includes
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

FINISHED = ("succeeded", "failed", "timed_out", "cancelled")


class Collector:
    """An OTLP/HTTP trace receiver on loopback: keeps every span it is sent, as plain dicts."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        lock = threading.Lock()
        spans = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                with lock:
                    for resource_spans in request.resource_spans:
                        service = next(
                            a.value.string_value
                            for a in resource_spans.resource.attributes
                            if a.key == "service.name"
                        )
                        for scope in resource_spans.scope_spans:
                            for span in scope.spans:
                                spans.append(
                                    {
                                        "service": service,
                                        "name": span.name,
                                        "trace_id": span.trace_id.hex(),
                                        "span_id": span.span_id.hex(),
                                        "parent_id": span.parent_span_id.hex() or None,
                                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                                    }
                                )
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(value):
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _from_sdk(span, service: str) -> dict:
    parent = span.parent
    return {
        "service": service,
        "name": span.name,
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": f"{span.context.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent else None,
        "attributes": dict(span.attributes or {}),
    }


@pytest.fixture()
def traced_stack(pg_database_url, model_server):
    """The API (in-process, in-memory exporter) and a root and an llm worker (OTEL_* only)."""
    from rlm_api import create_app
    from rlm_shared.config import Settings

    collector = Collector()
    broker, backend = free_redis_db((20, 21))  # queues of its own (tests use 3-14)
    otel = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    env = worker_env(pg_database_url, broker, backend, model_server.url, MODEL_PRICES=SCRIPTED_PRICES, **otel)
    settings = Settings(
        database_url=pg_database_url,
        celery_broker_url=broker,
        celery_result_backend=backend,
        llm_api_base=model_server.url,
        llm_api_key="scripted",
        default_model="openai/scripted-root",
        sub_model="openai/scripted-sub",
        dispatch="celery",
        model_prices=SCRIPTED_PRICES,
    )
    app = create_app(settings=settings)
    assert not tracing.is_on()  # this process has no OTEL_* set: created untraced
    exporter = InMemorySpanExporter()
    tracing.setup(app, exporter=exporter)
    root = CeleryWorker("rlm.root", {**env, "OTEL_SERVICE_NAME": "rlm-root"}, concurrency=4, name="otel-root")
    llm = CeleryWorker("rlm.llm", {**env, "OTEL_SERVICE_NAME": "rlm-llm"}, concurrency=8, name="otel-llm")
    try:
        root.wait_ready(app.extensions["celery"], timeout=240)
        llm.wait_ready(app.extensions["celery"], timeout=240)
        yield app, exporter, collector
    finally:
        tracing.shutdown(app)
        root.stop()
        llm.stop()
        collector.stop()


def _responder(request):
    system = next((m["content"] for m in request["messages"] if m["role"] == "system"), "")
    user = next(m["content"] for m in request["messages"] if m["role"] == "user")
    if "Recursive Language Model" not in system:
        return "leaf"
    if "child question" in user:
        return '```repl\nFINAL("from the child")\n```'
    return (
        "```repl\n"
        'parts = llm_query_batched(["first", "second"])\n'
        'child = rlm_query("child question", context="xy")\n'
        'FINAL(parts[0] + " " + child)\n'
        "```"
    )


def test_one_execution_is_one_trace_shaped_like_its_trace_table(traced_stack, scripted):
    app, exporter, collector = traced_stack
    scripted.responder = _responder
    client = app.test_client()
    response = client.post("/api/execute", json={"user_query": "trace me", "context": "some text"})
    assert response.status_code == 202, response.get_json()
    execution_id = response.get_json()["id"]

    def finished():
        body = client.get(f"/api/executions/{execution_id}").get_json()
        return body if body["status"] in FINISHED else None

    assert wait_for(finished, 90, what="the execution")["status"] == "succeeded"
    with app.app_context():
        from rlm_api.database import db
        from rlm_shared.models import TraceNode

        rows = db.session.execute(
            sa.select(TraceNode).where(TraceNode.execution_id == execution_id)
        ).scalars()
        nodes = {n.id: n for n in rows}
    assert {n.kind for n in nodes.values()} >= {"root", "iteration", "code", "llm_call", "child_rlm"}

    def every_span():
        spans = [_from_sdk(s, "rlm-api") for s in exporter.get_finished_spans()] + list(collector.spans)
        by_id = {s["span_id"]: s for s in spans}
        node_spans = {s["attributes"].get("rlm.node.id") for s in spans} - {None}
        missing_parents = [s for s in spans if s["parent_id"] and s["parent_id"] not in by_id]
        return spans if node_spans >= set(nodes) and not missing_parents else None

    everything = wait_for(every_span, 30, what="every node's span, and every parent span, exported")
    # Other traces are other requests (the status polls) and the workers' own housekeeping.
    node_traces = {s["trace_id"] for s in everything if "rlm.node.id" in s["attributes"]}
    assert len(node_traces) == 1, node_traces  # one trace across the API and both workers
    spans = [s for s in everything if s["trace_id"] in node_traces]
    by_id = {s["span_id"]: s for s in spans}
    roots = [s for s in spans if s["parent_id"] is None]
    assert [r["name"] for r in roots] == ["POST /api/execute"]  # one tree, from the API's request
    assert {s["service"] for s in spans} == {"rlm-api", "rlm-root", "rlm-llm"}

    span_of = {}
    for span in spans:
        node_id = span["attributes"].get("rlm.node.id")
        if node_id is not None:
            assert node_id not in span_of, f"node {node_id} has two spans"
            span_of[node_id] = span
    assert set(span_of) == set(nodes)
    for node_id, node in nodes.items():
        span = span_of[node_id]
        parent = by_id[span["parent_id"]]
        if node.parent_id is None:  # the root agent hangs from the Celery task that ran it
            assert node.kind == "root"
            assert parent["name"] == "run/rlm.run_execution" and parent["service"] == "rlm-root"
        else:
            assert parent["attributes"].get("rlm.node.id") == node.parent_id, (node.kind, node.path)
        attributes = span["attributes"]
        assert span["name"] == f"rlm.{node.kind}"
        assert attributes["rlm.node.kind"] == node.kind
        assert attributes["rlm.node.path"] == node.path
        assert attributes.get("gen_ai.request.model") == node.model
        assert attributes["gen_ai.usage.input_tokens"] == node.input_tokens
        assert attributes["gen_ai.usage.output_tokens"] == node.output_tokens
        assert attributes["rlm.cost_usd"] == pytest.approx(node.cost_usd)
        assert span["service"] == ("rlm-llm" if node.kind == "llm_call" else "rlm-root")
    paid = [n for n in nodes.values() if n.kind == "llm_call"]
    assert paid and all(span_of[n.id]["attributes"]["gen_ai.usage.input_tokens"] > 0 for n in paid)
    assert any(span_of[n.id]["attributes"]["rlm.cost_usd"] > 0 for n in paid)
    # The sub-call messages' Celery spans sit under the code cell whose llm_query_batched sent them.
    llm_tasks = [s for s in spans if s["name"] == "run/rlm.llm_calls"]
    assert llm_tasks
    for task in llm_tasks:
        producer = by_id[task["parent_id"]]
        assert by_id[producer["parent_id"]]["attributes"].get("rlm.node.kind") == "code"


def test_tracing_is_off_unless_otel_says_so(stack_app):
    """Off by default: nothing instrumented, no span processor, and the trace sink's hook idle."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    assert not tracing.wanted({})
    assert not tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert not tracing.wanted({"OTEL_TRACES_EXPORTER": "none"})
    assert not tracing.wanted({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"})
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "otlp"})
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "false"})

    assert not tracing.setup(stack_app, environ={"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})
    assert not tracing.is_on() and tracing.node_spans is None
    assert not getattr(stack_app, "_is_instrumented_by_opentelemetry", False)
    assert not CeleryInstrumentor().is_instrumented_by_opentelemetry
    # The global provider stays the API's no-op proxy: no SDK provider, so no span processor.
    assert not hasattr(trace.get_tracer_provider(), "add_span_processor")
    assert tracing.under_node("e", "0" * 32).__class__.__name__ == "nullcontext"
