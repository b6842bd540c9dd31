"""Adapters that record metrics around the engine's ports, so the engine itself knows nothing of them.

- `MeteredModelClient`: every model reply's tokens and cost, every failed call's kind. It wraps the
  process's client once (`services.model_client`), so root turns and sub-calls count alike and a
  sub-call answered from the trace (no model call) does not count twice.
- `MeteredTraceSink`: the latency of each leaf sub-call, read from its finished trace node, labelled
  with the queue of the worker that ran it. Wrapped where leaf calls run (the `rlm.llm` task, the
  embedded dispatcher), never around a root's sink, so one call is observed once.
"""

from __future__ import annotations

from typing import Any, cast

from rlm_worker import metrics
from rlm_worker.engine.ports import AsyncModelClient, ModelClient, ModelError, TraceSink
from rlm_worker.engine.types import ModelReply, TraceNode

#: The queue label of sub-calls run in the caller's process (`rlm run`, `rlm serve`).
IN_PROCESS_QUEUE = "in-process"


def _kind(exc: Exception) -> str:
    if isinstance(exc, ModelError):
        return metrics.error_kind(str(exc), exc.transient)
    return type(exc).__name__


class MeteredModelClient:
    """A ModelClient that counts tokens, cost and errors by model. Awaitable when `inner` is."""

    def __init__(self, inner: ModelClient) -> None:
        self.inner = inner

    def complete(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        try:
            reply = self.inner.complete(model, messages)
        except Exception as exc:
            metrics.model_failed(model, _kind(exc))
            raise
        metrics.model_replied(model, reply.input_tokens, reply.output_tokens, reply.cost_usd)
        return reply

    def waits_for_slot(self, model: str) -> bool:
        """As the wrapped client says (a local model's queue): the trace tells waiting from running."""
        waits = getattr(self.inner, "waits_for_slot", None)
        return bool(waits is not None and waits(model))

    async def acomplete(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        """Only called when `inner` can be awaited (see `supports_async`)."""
        try:
            reply = await cast(AsyncModelClient, self.inner).acomplete(model, messages)
        except Exception as exc:
            metrics.model_failed(model, _kind(exc))
            raise
        metrics.model_replied(model, reply.input_tokens, reply.output_tokens, reply.cost_usd)
        return reply


class MeteredTraceSink:
    """A TraceSink that observes each finished `llm_call` node's latency, then writes through."""

    def __init__(self, inner: TraceSink, queue: str) -> None:
        self.inner, self.queue = inner, queue

    def _observe(self, nodes: list[TraceNode]) -> None:
        for node in nodes:
            if node.kind == "llm_call" and node.status in ("succeeded", "failed") and node.finished_at:
                seconds = (node.finished_at - node.started_at).total_seconds()
                metrics.subcall_finished(node.model, self.queue, seconds)

    def node_started(self, node: TraceNode) -> None:
        self.inner.node_started(node)

    def node_finished(self, node: TraceNode) -> None:
        self.inner.node_finished(node)
        self._observe([node])

    def nodes_recorded(self, nodes: list[TraceNode]) -> None:
        self.inner.nodes_recorded(nodes)
        self._observe(nodes)

    def memory_snapshot(self, execution_id: str, node_id: str | None, blocks: dict[str, str]) -> None:
        self.inner.memory_snapshot(execution_id, node_id, blocks)

    def execution_progress(self, execution_id: str, fields: dict[str, Any]) -> None:
        self.inner.execution_progress(execution_id, fields)
