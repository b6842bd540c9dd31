"""The agent loop with the real sandbox and a scripted model."""

from __future__ import annotations

import time

from rlm_worker.engine.prompts import FORCE_FINAL_PROMPT
from tests.engine.conftest import FailingSub, ScriptedModel, fence, turn


def kinds(sink):
    return [n.kind for n in sink.tree()]


def test_code_runs_and_final_ends_the_loop(run):
    model = ScriptedModel(lambda m, _: fence("x = len(context)\nFINAL(f'{x} chars')"))
    result, sink = run(model, "hello world")
    assert result.status == "succeeded"
    assert result.final_answer == "11 chars"
    assert result.iterations == 1
    assert kinds(sink) == ["root", "iteration", "code"]
    assert sink.tree()[2].status == "succeeded"


def test_output_is_fed_back_and_variables_persist_between_turns(run):
    seen = []

    def root(messages, _):
        if turn(messages) == 0:
            return fence("words = context.split()\nprint('count', len(words))")
        seen.append(messages[-1]["content"])
        return fence("FINAL(words[-1])")

    result, _ = run(ScriptedModel(root), "a b c last")
    assert result.final_answer == "last"
    assert "count 4" in seen[0]


def test_several_cells_run_in_order_and_python_fences_count(run):
    reply = fence("a = 1") + "\nthen\n```python\nb = a + 1\n```\n" + fence("FINAL(a + b)")
    result, sink = run(ScriptedModel(lambda m, _: reply), "ctx")
    assert result.final_answer == "3"
    assert kinds(sink).count("code") == 3


def test_final_var_of_a_known_name(run):
    result, _ = run(ScriptedModel(lambda m, _: fence("out = context.upper()\nFINAL_VAR('out')")), "abc")
    assert result.final_answer == "ABC"


def test_final_var_of_an_unknown_name_is_an_error_not_an_end(run):
    def root(messages, _):
        if turn(messages) == 0:
            return fence("FINAL_VAR('nope')")
        assert "nope" in messages[-1]["content"]
        return fence("FINAL('recovered')")

    result, _ = run(ScriptedModel(root), "abc")
    assert result.final_answer == "recovered"
    assert result.iterations == 2


def test_answer_dict_ends_the_loop(run):
    code = "answer['content'] = 'via dict'\nanswer['ready'] = True"
    result, _ = run(ScriptedModel(lambda m, _: fence(code)), "abc")
    assert result.final_answer == "via dict"


def test_final_outside_a_fence_is_accepted(run):
    def root(messages, _):
        if turn(messages) == 0:
            return fence("total = 6 * 7\nprint(total)")
        return "I have it.\nFINAL(total)"

    result, _ = run(ScriptedModel(root), "abc")
    assert result.final_answer == "42"


def test_bare_final_with_prose_is_taken_literally(run):
    result, _ = run(ScriptedModel(lambda m, _: "FINAL(The answer is blue)"), "abc")
    assert result.final_answer == "The answer is blue"


def test_reply_without_code_gets_a_nudge(run):
    def root(messages, _):
        if turn(messages) == 0:
            return "Let me think about it."
        assert "no ```repl code block" in messages[-1]["content"]
        return fence("FINAL('ok')")

    result, _ = run(ScriptedModel(root), "abc")
    assert result.final_answer == "ok"


def test_forced_final_when_iterations_run_out(run):
    def root(messages, _):
        if messages[-1]["content"] == FORCE_FINAL_PROMPT:
            return "FINAL(best guess)"
        return fence("print('still looking')")

    result, sink = run(ScriptedModel(root), "abc", max_iterations=3)
    assert result.status == "succeeded"
    assert result.forced_final is True
    assert result.final_answer == "best guess"
    assert kinds(sink).count("iteration") == 4


def test_long_output_is_truncated_with_a_marker(run):
    fed = []

    def root(messages, _):
        if turn(messages) == 0:
            return fence("print('A' * 50000 + 'TAIL')")
        fed.append(messages[-1]["content"])
        return fence("FINAL('done')")

    run(ScriptedModel(root), "abc", output_limit=1000)
    assert len(fed[0]) < 1200
    assert "characters truncated" in fed[0]
    assert fed[0].rstrip().endswith("TAIL")


def test_exception_comes_back_as_a_short_traceback_of_the_models_code(run):
    fed = []

    def root(messages, _):
        if turn(messages) == 0:
            return fence("x = 1\ny = x / 0")
        fed.append(messages[-1]["content"])
        return fence("FINAL('ok')")

    run(ScriptedModel(root), "abc")
    assert "ZeroDivisionError" in fed[0]
    assert "rlm_worker" not in fed[0] and "site-packages" not in fed[0]


def test_list_context_shows_metadata_not_content(run):
    prompts = []

    def root(messages, _):
        prompts.append(messages[1]["content"])
        return fence("FINAL(str(len(context)) + ' ' + context[1])")

    context = ["first doc " * 5, "second", "third " * 100]
    result, _ = run(ScriptedModel(root), context)
    assert result.final_answer == "3 second"
    assert "list of 3 items" in prompts[0]
    assert "[50, 6, 600]" in prompts[0]
    assert "third third third third third third third" not in prompts[0]


def test_llm_query_batched_keeps_order_and_a_failed_item_yields_an_error_string(run):
    code = "rs = llm_query_batched(['one', 'FAIL two', 'three'])\nFINAL(' | '.join(rs))"
    model = FailingSub(lambda m, _: fence(code), sub=lambda p: p.upper())
    result, sink = run(model, "abc")
    parts = result.final_answer.split(" | ")
    assert parts[0] == "ONE" and parts[2] == "THREE"
    assert parts[1].startswith("Error:") and "scripted provider failure" in parts[1]
    calls = [n for n in sink.tree() if n.kind == "llm_call"]
    assert [c.status for c in calls] == ["succeeded", "failed", "succeeded"]
    assert calls[1].error


def test_sub_model_and_per_call_model(run):
    code = "a = llm_query('x')\nb = llm_query('y', model='other-model')\nFINAL(a + b)"
    model = ScriptedModel(lambda m, _: fence(code))
    result, sink = run(model, "abc")
    assert [n.model for n in sink.tree() if n.kind == "llm_call"] == ["sub-model", "other-model"]
    assert ("root", "root-model") in model.calls


def _recursive_root(messages, model):
    """Every agent splits its context in two halves and recurses until it is short."""
    return fence(
        "if len(context) <= 2:\n"
        "    FINAL(context.upper())\n"
        "half = len(context) // 2\n"
        "parts = rlm_query_batched(['upper'] * 2, contexts=[context[:half], context[half:]])\n"
        "FINAL(''.join(parts))"
    )


def test_recursion_to_depth_three_with_batched_children(run):
    result, sink = run(ScriptedModel(_recursive_root), "abcdefgh", max_recursion_depth=3)
    assert result.status == "succeeded", result.error
    assert result.final_answer == "ABCDEFGH"
    children = [n for n in sink.tree() if n.kind == "child_rlm"]
    assert len(children) == 2 + 4
    assert max(n.depth for n in children) == 2
    deepest_iterations = [n for n in sink.tree() if n.kind == "iteration" and n.depth == 2]
    assert len(deepest_iterations) == 4


def test_at_the_depth_limit_rlm_query_falls_back_to_llm_query(run):
    model = ScriptedModel(_recursive_root, sub=lambda p: "LEAF")
    result, sink = run(model, "abcdefgh", max_recursion_depth=1)
    assert result.final_answer == "LEAF" * 4
    assert len([n for n in sink.tree() if n.kind == "child_rlm"]) == 2
    assert len([n for n in sink.tree() if n.kind == "llm_call"]) == 4


def test_guard_max_sub_calls(run):
    code = "for i in range(100):\n    llm_query(str(i))\nFINAL('unreachable')"
    result, sink = run(ScriptedModel(lambda m, _: fence(code)), "abc", max_sub_calls=5, max_iterations=2)
    assert result.status == "failed"
    assert result.guard_hit == "max_sub_calls"
    assert len([n for n in sink.tree() if n.kind == "llm_call"]) == 5


def test_guard_max_total_tokens(run):
    model = ScriptedModel(lambda m, _: fence("print('x')"), tokens=1000)
    result, _ = run(model, "abc", max_total_tokens=5000, max_iterations=50)
    assert result.guard_hit == "max_total_tokens"
    assert result.iterations <= 4


def test_guard_max_cost_keeps_the_partial_answer(run):
    code = "answer['content'] = 'partial so far'\nllm_query('a')\nllm_query('b')\nllm_query('c')\nFINAL('x')"
    model = ScriptedModel(lambda m, _: fence(code), cost=0.4)
    result, _ = run(model, "abc", max_cost_usd=1.0)
    assert result.guard_hit == "max_cost_usd"
    assert result.status == "failed"
    assert result.final_answer == "partial so far"


def test_guard_timeout(run):
    def slow_sub(prompt):
        time.sleep(0.3)
        return "x"

    code = "for i in range(50):\n    llm_query(str(i))\nFINAL('no')"
    started = time.monotonic()
    result, _ = run(ScriptedModel(lambda m, _: fence(code), sub=slow_sub), "abc", timeout_seconds=1.0)
    assert result.status == "timed_out"
    assert result.guard_hit == "timeout_seconds"
    assert time.monotonic() - started < 5


def test_cancellation_stops_promptly(run):
    state = {"n": 0}

    def sub(prompt):
        state["n"] += 1
        return "x"

    code = "i = 0\nwhile True:\n    llm_query(str(i))\n    i += 1"
    result, _ = run(ScriptedModel(lambda m, _: fence(code), sub=sub), "abc", is_cancelled=lambda: state["n"] >= 3)
    assert result.status == "cancelled"
    assert state["n"] <= 4


def test_memory_is_shown_edited_and_snapshotted(run):
    def root(messages, _):
        if turn(messages) == 0:
            assert "user prefers short answers" in messages[1]["content"]
            return fence("memory.append('learnings', 'dates are ISO')\nprint(memory['learnings'])")
        return fence("memory['notes'] = 'n1'\nFINAL('ok')")

    result, sink = run(ScriptedModel(root), "abc", memory={"persona": "user prefers short answers"})
    assert result.memory["learnings"] == "dates are ISO"
    assert result.memory["notes"] == "n1"
    assert result.memory["persona"] == "user prefers short answers"
    blocks = [s[2] for s in sink.snapshots]
    assert blocks[0]["learnings"] == ""
    assert blocks[1]["learnings"] == "dates are ISO"
    assert blocks[-1]["notes"] == "n1"


def test_child_inherits_memory_and_its_learnings_merge_back_without_duplicates(run):
    def root(messages, _):
        first = messages[1]["content"]
        if "root agent" in first:
            return fence(
                "memory.append('learnings', 'shared fact')\n"
                "r = rlm_query_batched(['child a', 'child b'], inherit_memory=True)\n"
                "FINAL(memory['learnings'])"
            )
        assert "shared fact" in first  # inherited
        return fence("memory.append('learnings', 'child found X')\nFINAL('done')")

    result, sink = run(ScriptedModel(root), "abc")
    assert result.final_answer.splitlines() == ["shared fact", "child found X"]


def test_root_code_program_runs_without_a_root_model(run):
    program = "parts = llm_query_batched([QUESTION + ': ' + c for c in context])\nFINAL(','.join(parts))"
    model = ScriptedModel(lambda m, _: "never called", sub=lambda p: p.split(': ')[1])
    result, sink = run(model, ["a", "b"], query="echo", root_code=program)
    assert result.final_answer == "a,b"
    assert all(kind == "sub" for kind, _ in model.calls)
    iteration = next(n for n in sink.tree() if n.kind == "iteration")
    assert "no root model" in iteration.model


def test_session_variables_are_exported_and_restored(run):
    first, _ = run(ScriptedModel(lambda m, _: fence("found = ['a', 1]\nbad = lambda: 1\nFINAL('x')")), "abc")
    assert first.variables["found"] == ["a", 1]
    assert "bad" in first.dropped_variables
    second, _ = run(ScriptedModel(lambda m, _: fence("FINAL(found[0])")), "abc", variables=first.variables)
    assert second.final_answer == "a"


def test_totals_add_up_over_the_tree(run):
    code = "llm_query_batched(['a', 'b', 'c'])\nFINAL('x')"
    result, sink = run(ScriptedModel(lambda m, _: fence(code), tokens=10, cost=0.001), "abc")
    assert result.llm_calls == 4
    assert result.input_tokens == 40 and result.output_tokens == 40
    assert abs(result.cost_usd - 0.004) < 1e-9
    assert result.sub_calls == 3


def test_a_resumed_execution_answers_recorded_calls_from_the_trace(run):
    code = "rs = [llm_query(f'q{i}') for i in range(5)]\nFINAL(','.join(rs))"
    first_model = ScriptedModel(lambda m, _: fence(code), sub=lambda p: p.upper())
    first, sink = run(first_model, "abc")
    assert first.final_answer == "Q0,Q1,Q2,Q3,Q4"
    # Pretend the worker died while the last two sub-calls were in flight.
    calls = [n for n in sink.tree() if n.kind == "llm_call"]
    lost = {calls[3].id, calls[4].id}
    recorded = {n.id: n for n in sink.tree() if n.status == "succeeded" and n.id not in lost}

    second_model = ScriptedModel(lambda m, _: "the root model must not be asked again", sub=lambda p: p.upper())
    second, second_sink = run(second_model, "abc", recorded=recorded)
    assert second.final_answer == "Q0,Q1,Q2,Q3,Q4"
    assert second_model.calls == [("sub", "sub-model"), ("sub", "sub-model")]
    assert {n.id for n in second_sink.tree()} | set(recorded) == {n.id for n in sink.tree()}
    assert second.input_tokens == first.input_tokens
