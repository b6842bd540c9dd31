"""Compaction: a root whose messages near its (small, scripted) model window has its older turns
summarised into `compaction_history`, traced as a `compaction` node, and goes on to its answer."""

from __future__ import annotations

from rlm_worker.dispatchers import InProcessDispatcher
from rlm_worker.engine.compaction import SUMMARY_REQUEST, CompactionPolicy, estimate_tokens
from rlm_worker.engine.loop import Engine, ExecutionRequest
from rlm_worker.engine.memory_sink import InMemoryTraceSink
from rlm_worker.engine.options import ExecutionOptions
from tests.engine.conftest import ScriptedModel, fence

#: The scripted model's window: the prompts (~1,200 tokens) and a few turns of output fill it.
WINDOW = 3_000
#: ~500 tokens of output a turn.
OUTPUT = "print(' '.join(str(n) for n in range(1000, 1250)))"


def run_with_window(sandbox_factory, model, window=WINDOW, **options):
    sink = InMemoryTraceSink()
    policy = CompactionPolicy(window=lambda _model: window)
    engine = Engine(model, InProcessDispatcher(model, sink), sink, sandbox_factory, compaction=policy)
    request = ExecutionRequest(
        execution_id="exec-compaction",
        user_query="What is the sum of the step numbers?",
        context="numbers " * 50,
        root_model="root-model",
        sub_model="sub-model",
        options=ExecutionOptions(**options),
    )
    return engine.run(request), sink


class LongRun:
    """A root that prints ~500 tokens a turn, then answers from its variables (every step's, the
    summarised turns' too); it answers the summary request and records each prompt's size."""

    def __init__(self):
        self.prompt_tokens: list[int] = []
        self.summaries = 0

    def __call__(self, messages, model):
        self.prompt_tokens.append(estimate_tokens(model, messages))
        if messages[-1]["content"] == SUMMARY_REQUEST:
            self.summaries += 1
            return f"Summary {self.summaries}: steps so far are stored in `steps`; keep going."
        if len(self.prompt_tokens) > 12:
            return fence("FINAL(str(sum(steps)))")
        return fence(
            "try:\n    steps\nexcept NameError:\n    steps = []\n"
            f"steps.append(len(steps) + 1)\n{OUTPUT}"
        )


def test_messages_near_the_window_are_summarised_into_a_repl_variable_and_the_run_goes_on(sandbox_factory):
    script = LongRun()
    result, sink = run_with_window(sandbox_factory, ScriptedModel(script), max_iterations=20)
    assert result.status == "succeeded", result.error
    compactions = [n for n in sink.tree() if n.kind == "compaction"]
    assert compactions, "the messages never reached the window"
    # Every prompt stayed under the window: compaction came before the model would refuse.
    assert max(script.prompt_tokens) < WINDOW
    # The answer needs every step, including those from the turns that were summarised.
    steps = result.iterations
    assert result.final_answer == str(sum(range(1, steps)))
    first = compactions[0]
    assert first.response.startswith("Summary 1")
    assert first.parent_id == next(n.id for n in sink.tree() if n.kind == "root")
    assert "messages replaced by a summary" in first.stdout
    (kept,) = [n for n in sink.tree() if n.parent_id == first.id]
    assert kept.kind == "code" and kept.status == "succeeded"
    assert kept.code.startswith("compaction_history.extend(<the ")


def test_the_replaced_turns_and_summary_are_readable_from_compaction_history(sandbox_factory):
    def root(messages, model):
        if messages[-1]["content"] == SUMMARY_REQUEST:
            return "the summary"
        if "compacted once" in messages[-1]["content"]:
            return fence(
                "kinds = [entry['type'] for entry in compaction_history]\n"
                "replaced = compaction_history[0]['messages']\n"
                "FINAL(str(kinds) + ' ' + str(len(replaced)) + ' ' + replaced[0]['role'] + ' '"
                " + compaction_history[1]['content'])"
            )
        return fence(OUTPUT)

    result, sink = run_with_window(sandbox_factory, ScriptedModel(root), max_iterations=10)
    assert result.status == "succeeded", result.error
    assert result.final_answer.startswith("['turns', 'summary'] ")
    assert result.final_answer.endswith(" assistant the summary")
    assert "compaction_history" not in result.variables


def test_no_compaction_below_the_window(sandbox_factory):
    def root(messages, model):
        return fence("FINAL('small')") if len(messages) > 4 else fence("print('short')")

    result, sink = run_with_window(sandbox_factory, ScriptedModel(root), window=1_000_000)
    assert result.final_answer == "small"
    assert not [n for n in sink.tree() if n.kind == "compaction"]


def test_the_window_comes_from_litellm_for_a_known_model_and_the_setting_for_others():
    policy = CompactionPolicy.with_default_window(default_window=4_000, threshold=0.5)
    assert policy.limit("gpt-4o-mini") == 64_000  # litellm's map: 128,000 input tokens
    assert policy.limit("openai/some-unmapped-model") == 2_000
