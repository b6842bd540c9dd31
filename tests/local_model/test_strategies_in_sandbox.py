"""The built-in strategies as the sandbox runs them, with a scripted sub-model at the outer edge
(fast and exact), and the offline default that picks them."""

from __future__ import annotations

import re
import threading

import pytest

from rlm_worker.dispatchers import InProcessDispatcher
from rlm_worker.engine.loop import Engine, ExecutionRequest
from rlm_worker.engine.memory_sink import InMemoryTraceSink
from rlm_worker.engine.options import ExecutionOptions
from rlm_worker.engine.types import ModelReply
from rlm_worker.strategies import DEFAULT_STRATEGY, LOCAL_CHUNK_SIZE, get_strategy
from rlm_worker.strategies.common import split_chunks
from rlm_worker.strategies.offline import offline_plan

PARAGRAPH = "Nothing of note happened on this day at the harbour. " * 6
LOG = "\n\n".join(
    [PARAGRAPH] * 5
    + ["The Grey Petrel sailed for Lisbon on 3 May."]
    + [PARAGRAPH] * 5
    + ["The Grey Petrel sailed for Cadiz on 9 June."]
    + [PARAGRAPH] * 5
)


class ScriptedSubModel:
    """Answers like a good small model: copies a sentence naming the ship, else NONE."""

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self._lock = threading.Lock()

    def complete(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        prompt = messages[-1]["content"]
        with self._lock:
            self.prompts.append(prompt)
        if prompt.startswith("Question:") and "Notes taken from" in prompt:
            text = "The Grey Petrel sailed for Lisbon and then Cadiz."
        else:
            body = prompt.split('"""')[1]
            sentences = re.split(r"(?<=\.)\s+|\n", body)
            text = next((s.strip() for s in sentences if "Grey Petrel" in s), "NONE")
        return ModelReply(
            text=text, model=model, input_tokens=len(prompt) // 4, output_tokens=8, cost_usd=0.0
        )


@pytest.fixture(scope="module")
def sandbox_factory():
    from rlm_worker.sandbox import SandboxConfig, make_sandbox_factory

    return make_sandbox_factory(SandboxConfig())


def run(sandbox_factory, strategy: str, question: str, context):
    model = ScriptedSubModel()
    sink = InMemoryTraceSink()
    engine = Engine(model, InProcessDispatcher(model, sink), sink, sandbox_factory)
    result = engine.run(
        ExecutionRequest(
            execution_id=f"strategy-{strategy}",
            user_query=question,
            context=context,
            root_model="(none)",
            sub_model="local/smollm2",
            options=ExecutionOptions(chunk_size=LOCAL_CHUNK_SIZE),
            root_code=get_strategy(strategy),
            root_code_label=f"strategy {strategy}",
        )
    )
    return result, model.prompts, sink


def test_map_reduce_asks_every_chunk_then_combines_the_answers(sandbox_factory):
    result, prompts, _ = run(sandbox_factory, "map_reduce", "Where did the Grey Petrel sail?", LOG)
    assert result.status == "succeeded", result.error
    assert result.final_answer == "The Grey Petrel sailed for Lisbon and then Cadiz."
    chunk_prompts = [p for p in prompts if "Notes taken from" not in p]
    combine = [p for p in prompts if "Notes taken from" in p]
    assert len(chunk_prompts) == len(split_chunks(LOG, LOCAL_CHUNK_SIZE)) == 6
    assert len(combine) == 1 and "Lisbon" in combine[0] and "Cadiz" in combine[0]
    assert all(p.startswith("Question: Where did the Grey Petrel sail?") for p in prompts)  # question first


def test_find_returns_every_backed_answer_once(sandbox_factory):
    result, prompts, sink = run(sandbox_factory, "find", "Where did the Grey Petrel sail?", LOG)
    assert result.final_answer.splitlines() == [
        "The Grey Petrel sailed for Lisbon on 3 May.",
        "The Grey Petrel sailed for Cadiz on 9 June.",
    ]
    code = next(n for n in sink.nodes.values() if n.kind == "code")
    assert "find: no root model" in code.stdout


def test_search_asks_only_the_passages_with_the_terms_and_reads_lists_too(sandbox_factory):
    records = [{"day": i, "entry": PARAGRAPH} for i in range(30)]
    records[17]["entry"] = "The Grey Petrel sailed for Lisbon on 3 May."
    result, prompts, _ = run(sandbox_factory, "search", "Where did the Grey Petrel sail?", records)
    assert result.final_answer == "entry: The Grey Petrel sailed for Lisbon on 3 May."  # one line per key
    assert len(prompts) == 1  # one window carries the terms; no chunk is read for nothing


def test_search_widens_to_every_chunk_when_no_term_occurs(sandbox_factory):
    result, prompts, _ = run(sandbox_factory, "search", "Which albatross nested here?", LOG)
    assert result.final_answer == "NONE"
    assert len(prompts) == len(split_chunks(LOG, LOCAL_CHUNK_SIZE)) == 6


def test_offline_default_is_the_local_model_with_the_best_strategy(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    plan = offline_plan("openai/gpt-4o-mini", api_base=None)
    assert plan is not None
    assert (plan.sub_model, plan.strategy, plan.chunk_size) == ("local/smollm2", DEFAULT_STRATEGY, 1000)
    assert "no root model" in plan.notice and "OPENAI_API_KEY" in plan.notice
    assert offline_plan("openai/gpt-4o-mini", api_base="http://127.0.0.1:9/v1") is None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert offline_plan("openai/gpt-4o-mini", api_base=None) is None
