"""The compatibility suite: what the reference implementation's own tests check, run through our
engine (the real loop, the real sandbox, litellm over HTTP to the scripted model server).

Each case agrees with the reference or carries `@pytest.mark.difference("<case>")`; every such
case is a row of docs/compatibility.md (case, the reference's behaviour, ours, why), and
`test_compatibility_table.py` keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from rlm_worker.dispatchers import InProcessDispatcher
from rlm_worker.engine.llm import LiteLLMClient
from rlm_worker.engine.loop import Engine, ExecutionRequest, ExecutionResult
from rlm_worker.engine.memory_sink import InMemoryTraceSink
from rlm_worker.engine.options import ExecutionOptions
from rlm_worker.engine.types import TraceNode

ROOT_MODEL = "openai/scripted-root"
SUB_MODEL = "openai/scripted-sub"

#: (request JSON) -> the model's reply. Root turns carry the RLM system prompt; sub-calls do not.
Script = Callable[[dict[str, Any]], str]


def repl(code: str) -> str:
    """A reply holding one ```repl block, as the reference's models write them."""
    return f"```repl\n{code}\n```"


def is_root(request: dict[str, Any]) -> bool:
    messages = request.get("messages", [])
    return bool(messages) and messages[0]["role"] == "system"


def turn(request: dict[str, Any]) -> int:
    """The root turn this request asks for: 0 for the first."""
    return sum(1 for m in request["messages"] if m["role"] == "assistant")


def last(request: dict[str, Any]) -> str:
    return str(request["messages"][-1]["content"])


@dataclass
class Run:
    """One execution: its result, its trace, and every request the model server saw."""

    result: ExecutionResult
    nodes: list[TraceNode]
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def answer(self) -> str | None:
        return self.result.final_answer

    def kinds(self, kind: str) -> list[TraceNode]:
        return [n for n in self.nodes if n.kind == kind]

    def feedback(self, root_turn: int) -> str:
        """What the root was told after its turn `root_turn` (the user message that followed it)."""
        roots = [r for r in self.requests if is_root(r) and turn(r) == root_turn + 1]
        return last(roots[0])


@pytest.fixture(scope="session")
def sandbox_factory():
    from rlm_worker.sandbox import SandboxConfig, make_sandbox_factory

    return make_sandbox_factory(SandboxConfig())


@pytest.fixture()
def rlm(scripted, sandbox_factory) -> Callable[..., Run]:
    """rlm(script, context, query="What?", variables=None, **options) -> Run."""

    def _run(
        script: Script,
        context: Any = "the context",
        query: str = "What?",
        variables: dict[str, Any] | None = None,
        **options: Any,
    ) -> Run:
        seen: list[dict[str, Any]] = []

        def responder(request: dict[str, Any]) -> str:
            seen.append(request)
            return script(request)

        scripted.responder = responder
        client = LiteLLMClient(api_base=scripted.url, api_key="scripted", timeout=30, max_retries=0)
        sink = InMemoryTraceSink()
        engine = Engine(client, InProcessDispatcher(client, sink), sink, sandbox_factory)
        request = ExecutionRequest(
            execution_id="compat",
            user_query=query,
            context=context,
            root_model=ROOT_MODEL,
            sub_model=SUB_MODEL,
            options=ExecutionOptions(**options),
            variables=variables or {},
        )
        result = engine.run(request)
        return Run(result=result, nodes=sink.tree(), requests=seen)

    return _run


def cells_then(cells: list[str], then: Callable[[dict[str, Any]], str] | None = None) -> Script:
    """A root that writes `cells[i]` at turn i (as a repl block), then `then(request)`; sub-calls
    answer "sub: <prompt>"."""

    def script(request: dict[str, Any]) -> str:
        if not is_root(request):
            return f"sub: {last(request)}"
        step = turn(request)
        if step < len(cells):
            return repl(cells[step])
        assert then is not None, f"the root was asked for turn {step}; the script has {len(cells)}"
        return then(request)

    return script


def depth_of(request: dict[str, Any]) -> int:
    """0 for the root's turns, n for a child agent at depth n (its first message says so)."""
    first = next(m["content"] for m in request["messages"] if m["role"] == "user")
    marker = "You are a child agent at depth "
    return int(first.split(marker, 1)[1].split()[0]) if marker in first else 0


def question(request: dict[str, Any]) -> str:
    """The question of an agent's run (from its first user message)."""
    first = next(m["content"] for m in request["messages"] if m["role"] == "user")
    return first.split("The question:\n", 1)[1].split("\n", 1)[0]
