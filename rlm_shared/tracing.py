"""OpenTelemetry traces: off unless the standard `OTEL_*` variables turn them on; then one
execution is one distributed trace, from the API's request through every worker that touched it.

The official instrumentations make the process spans: Flask's for requests, Celery's for every
task sent and run (it carries the trace context in the message headers, so a root worker's run
continues the API request's trace, and an llm worker's batch continues the root's). On top of
those, every trace node (root, iteration, code cell, sub-call, child agent) becomes one span,
emitted by the trace sink when the node finishes, with the node's model, tokens and cost. A node
span's id is derived from the node's id, so any process can name a node's parent span without
having seen it: the spans form the trace table's tree whichever worker wrote each node.

The engine knows nothing of this: the adapters call `node_spans` (the trace sink) and
`under_node` (the Celery dispatcher, so the messages of a code cell's sub-calls carry it as their
parent). When tracing is off neither the SDK nor the instrumentations are imported, `node_spans`
is None, and the hooks cost one check.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from rlm_worker.engine.types import TraceNode

log = logging.getLogger("rlm.tracing")

#: The span exporters this package can build by the names OTEL_TRACES_EXPORTER uses; other names
#: are looked up among the installed exporters' entry points, as the SDK's auto-configuration does.
_BUILT_IN_EXPORTERS = ("otlp", "otlp_proto_http", "console")


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Tracing is on when OTEL_TRACES_EXPORTER names an exporter (not `none`) and the SDK is not
    disabled (OTEL_SDK_DISABLED=true). Unlike the SDK's own default (`otlp`), unset means off:
    a deployment that never heard of OpenTelemetry exports nothing and loads nothing."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    names = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    return bool(names) and names != ["none"]


def _exporters(environ: Mapping[str, str]) -> list[Any]:
    names = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    found = []
    for name in (n for n in names if n and n != "none"):
        if name in ("otlp", "otlp_proto_http"):
            protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
            )
            if protocol != "http/protobuf":
                raise ValueError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: this install exports OTLP over "
                    "http/protobuf only (point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's 4318)"
                )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            found.append(OTLPSpanExporter())  # endpoint, headers, timeout: from OTEL_EXPORTER_OTLP_*
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            found.append(ConsoleSpanExporter())
        else:
            from importlib.metadata import entry_points

            matches = entry_points(group="opentelemetry_traces_exporter", name=name)
            if not matches:
                raise ValueError(f"OTEL_TRACES_EXPORTER={name}: no such span exporter is installed")
            found.append(next(iter(matches)).load()())
    return found


class NodeSpans:
    """Turns finished trace nodes into spans of their execution's trace (see the module text)."""

    #: Executions (and node ids) remembered per process; old ones are forgotten first.
    REMEMBERED = 10_000

    def __init__(self, provider: Any) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._tracer = provider.get_tracer("rlm_engine.trace_nodes")
        self._anchors: OrderedDict[str, Any] = OrderedDict()  # execution id -> the span it began in
        self._emitted: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, nodes: list[TraceNode]) -> None:
        """Called with every batch of nodes the sink writes; finished ones become spans, once."""
        for node in nodes:
            anchor = self._anchor(node.execution_id)
            if anchor is None or node.status == "running" or node.finished_at is None:
                continue
            with self._lock:
                if node.id in self._emitted:
                    continue
                self._emitted[node.id] = None
                if len(self._emitted) > self.REMEMBERED * 16:
                    self._emitted.popitem(last=False)
            self._emit(node, anchor)

    def _anchor(self, execution_id: str) -> Any:
        """The span context an execution's root node hangs from: the span current when this
        process first wrote one of its nodes (the Celery task that runs it, or the API request
        in embedded mode). Threads without a context (child agents) find it here."""
        with self._lock:
            known = self._anchors.get(execution_id)
            if known is not None:
                return known
            current = self._trace.get_current_span().get_span_context()
            if not current.is_valid:
                return None
            self._anchors[execution_id] = current
            if len(self._anchors) > self.REMEMBERED:
                self._anchors.popitem(last=False)
            return current

    def _emit(self, node: TraceNode, anchor: Any) -> None:
        trace = self._trace
        if node.parent_id is None:
            parent = anchor
        else:
            parent = trace.SpanContext(
                anchor.trace_id, span_id_of(node.parent_id), is_remote=True, trace_flags=anchor.trace_flags
            )
        token = _next_span_id.set(span_id_of(node.id))
        try:
            span = self._tracer.start_span(
                f"rlm.{node.kind}",
                context=trace.set_span_in_context(trace.NonRecordingSpan(parent)),
                start_time=_nanoseconds(node.started_at or node.queued_at or node.finished_at),
                attributes=_attributes(node),
            )
        finally:
            _next_span_id.reset(token)
        if node.status != "succeeded":
            span.set_status(trace.StatusCode.ERROR, node.error or node.status)
        span.end(end_time=_nanoseconds(node.finished_at))

    @contextlib.contextmanager
    def under_node(self, execution_id: str, node_id: str) -> Iterator[None]:
        """Make `node_id`'s span the current parent (for the Celery messages sent meanwhile)."""
        from opentelemetry import context

        anchor = self._anchor(execution_id)
        if anchor is None:
            yield
            return
        parent = self._trace.SpanContext(
            anchor.trace_id, span_id_of(node_id), is_remote=True, trace_flags=anchor.trace_flags
        )
        token = context.attach(self._trace.set_span_in_context(self._trace.NonRecordingSpan(parent)))
        try:
            yield
        finally:
            context.detach(token)


def span_id_of(node_id: str) -> int:
    """A node's span id: the first 64 bits of its (uuid5) id, never 0 (an invalid span id)."""
    return int(node_id[:16], 16) or 1


def _nanoseconds(moment: Any) -> int:
    return int(moment.timestamp() * 1_000_000_000)


def _attributes(node: TraceNode) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "rlm.execution_id": node.execution_id,
        "rlm.node.id": node.id,
        "rlm.node.kind": node.kind,
        "rlm.node.path": node.path,
        "rlm.node.depth": node.depth,
        "rlm.node.status": node.status,
        "gen_ai.usage.input_tokens": node.input_tokens,
        "gen_ai.usage.output_tokens": node.output_tokens,
        "rlm.cost_usd": node.cost_usd,
    }
    if node.model:
        attributes["gen_ai.request.model"] = node.model
    return attributes


#: The span id the next span started in this context gets (a node's); unset: a random one.
_next_span_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("rlm_next_span_id", default=None)


def _id_generator() -> Any:
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class NodeIdGenerator(RandomIdGenerator):
        """Random ids, except for node spans, whose ids come from their nodes (`span_id_of`)."""

        def generate_span_id(self) -> int:
            return _next_span_id.get() or super().generate_span_id()

    return NodeIdGenerator()


#: Set when tracing is on in this process; the hooks test it and do nothing while it is None.
node_spans: NodeSpans | None = None
_provider: Any = None
_setup_lock = threading.Lock()


def setup(app: Any, exporter: Any = None, environ: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on for this process and instrument `app` (the Flask app; None in a worker) and Celery, when
    OTEL_* asks for it, or with `exporter` (tests: an in-memory one, exported at once). The
    provider is this package's own, not the global one, so nothing else in the process changes."""
    global node_spans, _provider
    if exporter is None and not wanted(environ):
        return False
    with _setup_lock:
        if _provider is None:
            try:
                _start(exporter, environ)
            except ImportError as exc:
                log.warning(
                    "OTEL_TRACES_EXPORTER is set but %s is not installed: tracing stays off "
                    "(pip install 'rlm-engine[otel]')",
                    exc.name,
                )
                return False
        if app is None:
            return True
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        if not getattr(app, "_is_instrumented_by_opentelemetry", False):
            FlaskInstrumentor().instrument_app(app, tracer_provider=_provider)
    return True


def _start(exporter: Any, environ: Mapping[str, str]) -> None:
    global node_spans, _provider
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read by Resource.create; this is the
    # name when neither gives one.
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {"service.name": "rlm-engine"}
    provider = TracerProvider(resource=Resource.create(attributes), id_generator=_id_generator())
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for each in _exporters(environ):
            provider.add_span_processor(BatchSpanProcessor(each))  # OTEL_BSP_* apply
    CeleryInstrumentor().instrument(tracer_provider=provider)
    _provider, node_spans = provider, NodeSpans(provider)
    log.info("OpenTelemetry tracing is on (%s)", environ.get("OTEL_TRACES_EXPORTER") or "exporter given")


def under_node(execution_id: str, node_id: str) -> contextlib.AbstractContextManager[None]:
    """The context to send a node's sub-call messages in; nothing when tracing is off."""
    spans = node_spans
    return contextlib.nullcontext() if spans is None else spans.under_node(execution_id, node_id)


def shutdown(app: Any = None) -> None:
    """Export what is buffered and take the instrumentation off (tests; a process exits through
    the SDK's own shutdown at exit)."""
    global node_spans, _provider
    with _setup_lock:
        if _provider is None:
            return
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        CeleryInstrumentor().uninstrument()
        if app is not None and getattr(app, "_is_instrumented_by_opentelemetry", False):
            FlaskInstrumentor.uninstrument_app(app)
        _provider.shutdown()
        _provider, node_spans = None, None


def is_on() -> bool:
    return _provider is not None
