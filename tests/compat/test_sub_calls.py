"""Sub-calls as the reference's tests check them: `llm_query` (a plain call, never a child),
`llm_query_batched`, `rlm_query` and `rlm_query_batched` (child agents with a REPL of their own,
`rlm_query(prompt, model)` positionally), failures as error strings, and the depth limit."""

from __future__ import annotations

import pytest

from tests.compat.conftest import ROOT_MODEL, depth_of, is_root, last, question, repl, turn
from tests.support.scripted_model import ScriptedError


def agents(root_cells: list[str], child=None, sub=None):
    """A root writing `root_cells` then FINAL_VAR(out); children (depth >= 1) answer with
    `child(request)` (default: one cell answering "child:<question>"); sub-calls with
    `sub(prompt)` (default "sub:<prompt>")."""

    def script(request):
        if not is_root(request):
            prompt = last(request)
            return sub(prompt) if sub else f"sub:{prompt}"
        if depth_of(request):
            if child:
                return child(request)
            return repl(f"FINAL('child:' + {question(request)!r})")
        step = turn(request)
        return repl(root_cells[step]) if step < len(root_cells) else "FINAL_VAR(out)"

    return script


def test_llm_query_returns_the_sub_models_reply_and_starts_no_child(rlm):
    run = rlm(agents(["out = llm_query('test')"]))
    assert run.answer == "sub:test"
    assert len(run.kinds("llm_call")) == 1 and run.kinds("child_rlm") == []


def test_llm_query_batched_keeps_the_order_and_starts_no_child(rlm):
    run = rlm(agents(["out = llm_query_batched(['q1', 'q2', 'q3'])"]))
    assert run.answer == '["sub:q1", "sub:q2", "sub:q3"]'
    assert run.kinds("child_rlm") == []


def test_llm_query_with_a_model_goes_to_that_model(rlm, scripted):
    run = rlm(agents(["out = llm_query('q', model='openai/gpt-4')"]))
    assert run.answer == "sub:q"
    assert run.kinds("llm_call")[0].model == "openai/gpt-4"
    assert scripted.stats()["by_model"].get("gpt-4") == 1


def test_rlm_query_runs_a_child_agent_with_its_own_repl(rlm):
    run = rlm(agents(["out = rlm_query('hello')"]))
    assert run.answer == "child:hello"
    (child,) = run.kinds("child_rlm")
    assert child.depth == 1 and child.response == "child:hello"
    assert any(n.kind == "code" and n.depth == 1 for n in run.nodes)  # the child ran code


@pytest.mark.parametrize("call", ["rlm_query('hello', model='openai/gpt-4')", "rlm_query('hello', 'openai/gpt-4')"])
def test_rlm_query_with_a_model_runs_the_child_on_that_model(rlm, call):
    run = rlm(agents([f"out = {call}"]))
    assert run.answer == "child:hello"
    (child,) = run.kinds("child_rlm")
    assert child.model == "openai/gpt-4"
    assert {n.model for n in run.kinds("iteration") if n.depth == 1} == {"openai/gpt-4"}


def test_rlm_query_takes_a_context_by_keyword(rlm):
    run = rlm(
        agents(
            ["out = rlm_query('what does it say?', context='the child reads this')"],
            child=lambda request: repl("FINAL(context)"),
        )
    )
    assert run.answer == "the child reads this"


def test_a_context_given_positionally_is_refused_with_a_clear_error(rlm):
    run = rlm(agents(["out = rlm_query('q', ['a', 'list'])", "out = 'went on'"]))
    assert "pass a context as rlm_query(prompt, context=...)" in run.feedback(0)
    assert run.answer == "went on"


def test_a_failed_child_is_an_error_string(rlm):
    def child(request):
        raise ScriptedError(400, "subcall failed")

    run = rlm(agents(["out = rlm_query('hello')\nprint(out)"], child=child))
    assert run.answer.startswith("Error") and "subcall failed" in run.answer
    assert "Traceback" not in run.feedback(0)


def test_rlm_query_batched_runs_one_child_per_prompt_in_order(rlm):
    run = rlm(agents(["out = rlm_query_batched(['q1', 'q2', 'q3'])\nprint(len(out))"]))
    assert run.answer == '["child:q1", "child:q2", "child:q3"]'
    assert run.feedback(0).endswith("3")
    assert [n.prompt for n in run.kinds("child_rlm")] == ["q1", "q2", "q3"]


def test_rlm_query_batched_with_a_model(rlm):
    run = rlm(agents(["out = rlm_query_batched(['q1', 'q2'], model='openai/custom-model')"]))
    assert {n.model for n in run.kinds("child_rlm")} == {"openai/custom-model"}


def test_rlm_query_batched_with_one_failure_answers_the_others(rlm):
    def child(request):
        if question(request) == "fail_me":
            raise ScriptedError(400, "intentional failure")
        return repl(f"FINAL('ok-' + {question(request)!r})")

    run = rlm(agents(["out = rlm_query_batched(['a', 'fail_me', 'c'])"], child=child))
    first, failed, third = __import__("json").loads(run.answer)
    assert (first, third) == ("ok-a", "ok-c")
    assert failed.startswith("Error") and "intentional failure" in failed


def test_rlm_query_batched_of_nothing_is_an_empty_list_and_no_call(rlm):
    run = rlm(agents(["out = rlm_query_batched([])"]))
    assert run.answer == "[]" and run.kinds("child_rlm") == []


def test_rlm_query_batched_of_one_prompt(rlm):
    run = rlm(agents(["out = rlm_query_batched(['only one'])"]))
    assert run.answer == '["child:only one"]'


def test_batched_children_run_at_the_same_time(rlm, scripted):
    """Four children of one 0.4 s model call each: their calls overlap (the server counts how many
    it answered at once; one after another it would never be more than one)."""
    scripted.latency = 0.4
    run = rlm(agents(["out = rlm_query_batched(['p0', 'p1', 'p2', 'p3'])"]))
    assert run.answer == '["child:p0", "child:p1", "child:p2", "child:p3"]'
    assert scripted.stats()["peak_concurrency"] >= 2


def test_llm_query_batched_calls_run_at_the_same_time(rlm, scripted):
    scripted.latency = 0.4
    run = rlm(agents(["out = llm_query_batched(['a', 'b', 'c', 'd'])"]))
    assert run.answer == '["sub:a", "sub:b", "sub:c", "sub:d"]'
    assert scripted.stats()["peak_concurrency"] == 4


def test_at_the_depth_limit_rlm_query_is_a_plain_llm_query(rlm):
    run = rlm(agents(["out = rlm_query('leaf question')"]), max_recursion_depth=0)
    assert run.answer == "sub:leaf question"
    assert run.kinds("child_rlm") == [] and len(run.kinds("llm_call")) == 1


def test_a_child_at_the_depth_limit_answers_its_rlm_query_with_a_plain_call(rlm):
    def child(request):
        if turn(request) == 0:
            return repl("inner = rlm_query('deeper')\nFINAL(inner)")
        return "FINAL(unreached)"

    run = rlm(agents(["out = rlm_query('outer')"], child=child), max_recursion_depth=1)
    assert run.answer == "sub:deeper"
    assert len(run.kinds("child_rlm")) == 1
    (leaf,) = run.kinds("llm_call")
    assert leaf.depth == 2


def test_a_child_without_a_model_runs_on_its_parents(rlm):
    run = rlm(agents(["out = rlm_query('hello')"]))
    assert run.kinds("child_rlm")[0].model == ROOT_MODEL


def test_a_child_shares_the_iteration_limit_and_gives_its_best_answer(rlm):
    def child(request):
        if "You have used every iteration" in last(request):
            return "child best guess"
        return repl("print('still looking')")

    run = rlm(agents(["out = rlm_query('hard')"], child=child), max_iterations=2)
    assert run.answer == "child best guess"
    assert len([n for n in run.kinds("iteration") if n.depth == 1]) == 3  # two turns and the last call
