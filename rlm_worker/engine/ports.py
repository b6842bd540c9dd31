"""The engine's ports: the only ways it reaches models, workers, storage and the sandbox.

Adapters implement these: Celery + SQLAlchemy in production, threads + SQLite in embedded
mode, plain Python objects in unit tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from rlm_worker.engine.types import CellResult, LLMCall, LLMCallOutcome, ModelReply, TraceNode


class ModelError(Exception):
    """A model call failed. `transient` errors (429, 5xx, timeouts) are worth retrying."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class CallRejected(Exception):
    """Raised by a call handler to make the REPL function raise in the model's code."""


class ModelClient(Protocol):
    def complete(self, model: str, messages: list[dict[str, str]]) -> ModelReply: ...


class AsyncModelClient(ModelClient, Protocol):
    """A ModelClient that can also be awaited: a batch of leaf calls then shares one event loop."""

    async def acomplete(self, model: str, messages: list[dict[str, str]]) -> ModelReply: ...


def supports_async(client: ModelClient) -> bool:
    """True if `client.acomplete` can be awaited. A wrapper (it keeps what it wraps in `.inner`)
    can only be awaited when what it wraps can."""
    while callable(getattr(client, "acomplete", None)):
        inner = getattr(client, "inner", None)
        if inner is None:
            return True
        client = inner
    return False


class Dispatcher(Protocol):
    """Runs leaf sub-calls somewhere (Celery tasks, a thread pool) and returns outcomes in order.

    Never raises for a failed call: a failure is an outcome with `error` set, and so is a call
    still unanswered after `timeout` seconds.
    """

    def run_llm_calls(self, calls: list[LLMCall], timeout: float | None = None) -> list[LLMCallOutcome]: ...


class TraceSink(Protocol):
    """Where the engine writes its trace. Every write is idempotent by node id."""

    def node_started(self, node: TraceNode) -> None: ...

    def node_finished(self, node: TraceNode) -> None: ...

    def nodes_recorded(self, nodes: list[TraceNode]) -> None: ...

    def memory_snapshot(self, execution_id: str, node_id: str | None, blocks: dict[str, str]) -> None: ...

    def execution_progress(self, execution_id: str, fields: dict[str, Any]) -> None: ...


#: (function name, JSON arguments) -> JSON result. Raise CallRejected to raise inside the REPL.
CallHandler = Callable[[str, dict[str, Any]], Any]


class Sandbox(Protocol):
    """A REPL whose variables persist between cells of one execution."""

    def execute(self, code: str, on_call: CallHandler) -> CellResult: ...

    def get_variables(self) -> tuple[dict[str, Any], list[str]]: ...

    def close(self) -> None: ...


class SandboxFactory(Protocol):
    def __call__(self, context: Any, variables: dict[str, Any], constants: dict[str, Any]) -> Sandbox: ...
