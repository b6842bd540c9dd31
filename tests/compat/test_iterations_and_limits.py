"""The loop's limits as the reference's tests check them: an answer on the first turn, several
turns before it, the last "give your best answer" call when the iterations run out, and the
token and time limits."""

from __future__ import annotations

import pytest

from tests.compat.conftest import is_root, last, repl, turn
from tests.support.scripted_model import ScriptedError


def test_an_answer_on_the_first_turn_ends_the_run(rlm):
    run = rlm(lambda r: repl('answer["content"] = "42"\nanswer["ready"] = True'))
    assert (run.answer, run.result.iterations, run.result.status) == ("42", 1, "succeeded")


def test_several_turns_before_the_answer(rlm):
    run = rlm(lambda r: repl("x = 1") if turn(r) < 2 else 'FINAL("done")')
    assert (run.answer, run.result.iterations) == ("done", 3)


def test_when_the_iterations_run_out_one_last_call_asks_for_the_best_answer(rlm):
    def script(request):
        if "You have used every iteration" in last(request):
            return "my best answer"
        return repl("print('still working')")

    run = rlm(script, max_iterations=3)
    assert run.answer == "my best answer"
    assert run.result.forced_final and run.result.status == "succeeded"
    roots = [r for r in run.requests if is_root(r)]
    assert len(roots) == 4  # three turns, then the one last call
    assert roots[-1]["messages"][-2]["role"] == "user"  # it still sees the last cell's output


@pytest.mark.difference("forced-final-request")
def test_the_last_call_is_a_user_message_and_a_final_in_it_is_read(rlm):
    def script(request):
        if "You have used every iteration" in last(request):
            return "I could not finish.\nFINAL(partial: 3 of 5)"
        return repl("print('working')")

    run = rlm(script, max_iterations=1)
    last_request = [r for r in run.requests if is_root(r)][-1]
    assert last_request["messages"][-1]["role"] == "user"
    assert run.answer == "partial: 3 of 5"


@pytest.mark.difference("limits-are-statuses")
def test_the_token_limit_stops_the_run_and_keeps_the_partial_answer(rlm):
    run = rlm(
        lambda r: repl('answer["content"] = "partial"\nprint("x" * 2000)'),
        max_total_tokens=3000,
        max_iterations=50,
    )
    assert run.result.status == "failed"
    assert run.result.guard_hit == "max_total_tokens"
    assert run.answer == "partial"
    assert run.result.input_tokens + run.result.output_tokens > 3000


@pytest.mark.difference("limits-are-statuses")
def test_the_time_limit_stops_the_run(rlm, scripted):
    scripted.latency = 0.3
    run = rlm(lambda r: repl("x = 1"), timeout_seconds=1.0, max_iterations=50)
    assert run.result.status == "timed_out"
    assert run.result.guard_hit == "timeout_seconds"


@pytest.mark.difference("no-error-threshold")
def test_repeated_errors_do_not_end_the_run(rlm):
    run = rlm(lambda r: repl("1 / 0") if turn(r) < 4 else 'FINAL("recovered")', max_iterations=10)
    assert run.answer == "recovered" and run.result.iterations == 5


def test_a_failing_root_model_fails_the_run_with_the_reason(rlm):
    def script(request):
        raise ScriptedError(401, "bad key")

    run = rlm(script)
    assert run.result.status == "failed" and "bad key" in run.result.error
