"""Engine unit tests: the real engine and real sandbox, a scripted model at the outer edge (no network)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from rlm_worker.dispatchers import InProcessDispatcher
from rlm_worker.engine.loop import Engine, ExecutionRequest, ExecutionResult
from rlm_worker.engine.memory_sink import InMemoryTraceSink
from rlm_worker.engine.options import ExecutionOptions
from rlm_worker.engine.ports import ModelError
from rlm_worker.engine.types import ModelReply

RootScript = Callable[[list[dict[str, str]], str], str]


def fence(code: str) -> str:
    return f"```repl\n{code}\n```"


class ScriptedModel:
    """The model, scripted: root turns (with a system prompt) go to `root`, sub-calls to `sub`."""

    def __init__(self, root: RootScript, sub: Callable[[str], str] = lambda p: "ok", tokens: int = 10, cost: float = 0.001):
        self.root, self.sub = root, sub
        self.tokens, self.cost = tokens, cost
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def complete(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        is_root = messages[0]["role"] == "system"
        text = self.root(messages, model) if is_root else self.sub(messages[-1]["content"])
        with self._lock:
            self.calls.append(("root" if is_root else "sub", model))
        return ModelReply(text=text, model=model, input_tokens=self.tokens, output_tokens=self.tokens, cost_usd=self.cost)


class FailingSub(ScriptedModel):
    def complete(self, model, messages):
        if messages[0]["role"] != "system" and "FAIL" in messages[-1]["content"]:
            raise ModelError("scripted provider failure", transient=False)
        return super().complete(model, messages)


def turn(messages: list[dict[str, str]]) -> int:
    return sum(1 for m in messages if m["role"] == "assistant")


@pytest.fixture(scope="session")
def sandbox_factory():
    from rlm_worker.sandbox import SandboxConfig, make_sandbox_factory

    return make_sandbox_factory(SandboxConfig())


@pytest.fixture()
def run(sandbox_factory):
    """run(model, context, query="q", **options) -> (result, sink)."""

    def _run(model, context, query="What?", memory=None, variables=None, is_cancelled=None, root_code=None,
             recorded=None, **options):
        sink = InMemoryTraceSink()
        engine = Engine(model, InProcessDispatcher(model, sink), sink, sandbox_factory)
        request = ExecutionRequest(
            execution_id="exec1",
            user_query=query,
            context=context,
            root_model="root-model",
            sub_model="sub-model",
            options=ExecutionOptions(**options),
            memory=memory or {},
            variables=variables or {},
            root_code=root_code,
            recorded=recorded or {},
        )
        result: ExecutionResult = engine.run(request, is_cancelled=is_cancelled)
        return result, sink

    return _run
