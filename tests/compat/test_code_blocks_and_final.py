"""Reading the model's reply, as the reference's parsing tests check it: code blocks, FINAL and
FINAL_VAR written in prose, and the `answer` dict."""

from __future__ import annotations

import pytest

from tests.compat.conftest import cells_then, is_root, last, repl, turn


def test_one_repl_block_runs_and_its_output_comes_back(rlm):
    run = rlm(cells_then(["x = 1 + 2\nprint(x)"], lambda r: "FINAL(done)"))
    assert run.answer == "done"
    assert run.feedback(0).splitlines()[-1] == "3"
    code = run.kinds("code")[0]
    assert "x = 1 + 2" in code.code and "print(x)" in code.code


def test_several_blocks_of_one_reply_run_in_order(rlm):
    reply = "First block:\n" + repl("a = 1") + "\nSecond block:\n" + repl("b = a + 1") + "\nEnd."
    run = rlm(lambda r: reply if turn(r) == 0 else "FINAL_VAR(b)")
    assert [n.code.strip() for n in run.kinds("code")][:2] == ["a = 1", "b = a + 1"]
    assert run.answer == "2"


def test_a_multiline_block_with_a_function_runs_whole(rlm):
    code = (
        "def factorial(n):\n    if n <= 1:\n        return 1\n    return n * factorial(n - 1)\n\n"
        "result = factorial(5)\nprint(result)"
    )
    run = rlm(cells_then([code], lambda r: "FINAL_VAR(result)"))
    assert run.answer == "120"


@pytest.mark.difference("no-code-reply")
def test_a_reply_without_code_or_final_runs_nothing_and_the_loop_goes_on(rlm):
    def script(request):
        if turn(request) == 0:
            return "Just plain text without any code blocks."
        return 'FINAL("later")'

    run = rlm(script)
    assert run.kinds("code") == []
    assert run.answer == "later" and run.result.iterations == 2
    assert "no ```repl code block" in run.feedback(0)  # ours says so; the reference says nothing


@pytest.mark.difference("python-fence")
def test_a_python_block_runs_as_a_repl_block(rlm):
    reply = "Python block:\n```python\nx = 1\n```\nREPL block:\n" + repl("y = 2")
    run = rlm(lambda r: reply if turn(r) == 0 else "FINAL(str(x + y))")
    assert [n.code.strip() for n in run.kinds("code")] == ["x = 1", "y = 2"]


@pytest.mark.parametrize(
    ("prose", "answer"),
    [
        ("The answer is:\nFINAL(42)", "42"),
        ("FINAL(This is a\nmultiline answer)", "This is a\nmultiline answer"),
        ("   FINAL(answer with spaces)", "answer with spaces"),
        ("FINAL(func(arg1, arg2))", "func(arg1, arg2)"),
        ("FINAL([1, 2, 3], (4, 5))", "[1, 2, 3], (4, 5)"),
        ("FINAL({'key': 'value', 'nested': {'a': 1, 'b': 2}})", "{'key': 'value', 'nested': {'a': 1, 'b': 2}}"),
        ("FINAL(calculate(10, 20) + process(data))", "calculate(10, 20) + process(data)"),
        ("FINAL(42)", "42"),
        ("FINAL(123.45)", "123.45"),
        ("FINAL([1, 2, 3])", "[1, 2, 3]"),
        ("FINAL(direct_answer)", "direct_answer"),
    ],
)
def test_a_final_in_prose_is_its_text(rlm, prose, answer):
    calls = []

    def script(request):
        if not is_root(request):
            calls.append(request)
        return prose

    run = rlm(script)
    assert run.answer == answer
    assert calls == [] and run.kinds("llm_call") == []  # nothing was asked
    # Nothing ran but, for a bare name, the look-up of a variable of that name.
    lookup = f"try:\n    FINAL_VAR({answer!r}, data_only=True)\nexcept NameError:\n    pass"
    assert [n.code for n in run.kinds("code")] in ([], [lookup])


@pytest.mark.difference("final-quoted-text")
@pytest.mark.parametrize(("prose", "answer"), [("FINAL('hello world')", "hello world"), ('FINAL("test")', "test")])
def test_a_quoted_final_in_prose_is_the_text_without_its_quotes(rlm, prose, answer):
    assert rlm(lambda r: prose).answer == answer


@pytest.mark.difference("final-bare-name")
def test_a_bare_name_in_a_final_in_prose_is_that_variables_value(rlm):
    run = rlm(cells_then(["direct_answer = 'from the variable'"], lambda r: "FINAL(direct_answer)"))
    assert run.answer == "from the variable"


def test_a_final_not_at_the_start_of_a_line_is_not_an_answer(rlm):
    run = rlm(lambda r: "The result is FINAL(42)" if turn(r) == 0 else "FINAL(43)")
    assert run.answer == "43" and run.result.iterations == 2


def test_a_reply_still_working_is_not_an_answer(rlm):
    run = rlm(lambda r: "Still working on the problem..." if turn(r) == 0 else "FINAL(ok)")
    assert run.result.iterations == 2


@pytest.mark.parametrize("spelling", ["FINAL_VAR(result)", "FINAL_VAR('result')", 'FINAL_VAR("result")'])
def test_final_var_in_prose_answers_with_the_variable(rlm, spelling):
    run = rlm(cells_then(["result = 'computed_result'"], lambda r: "Check the variable:\n" + spelling))
    assert run.answer == "computed_result"


def test_final_var_comes_before_final(rlm):
    run = rlm(cells_then(["result = 'var_value'"], lambda r: "FINAL_VAR(result)\nFINAL(direct_answer)"))
    assert run.answer == "var_value"


def test_final_var_of_a_missing_variable_is_no_answer_and_the_loop_goes_on(rlm):
    def script(request):
        step = turn(request)
        if step == 0:
            return "Check the variable:\nFINAL_VAR(result)"
        if step == 1:
            return repl("result = 'now set'")
        return "FINAL_VAR(result)"

    run = rlm(script)
    assert run.answer == "now set" and run.result.iterations == 3
    assert "result" in run.feedback(0)


@pytest.mark.parametrize(
    ("assignment", "answer"),
    [
        ("x = 42", "42"),
        ("result = 'hello world'", "hello world"),
        ("computed = 10 * 5 + 2", "52"),
        ("nested = {'key': 'value', 'num': 123}", '{"key": "value", "num": 123}'),
        ("items = [1, 2, 3, 4, 5]", "[1, 2, 3, 4, 5]"),
    ],
)
def test_final_var_reads_each_kind_of_value(rlm, assignment, answer):
    name = assignment.split(" =")[0]
    run = rlm(cells_then([assignment], lambda r: f"FINAL_VAR({name})"))
    assert run.answer == answer


def test_final_var_sees_the_latest_value(rlm):
    run = rlm(cells_then(["x = 42", "x = 100"], lambda r: "FINAL_VAR(x)"))
    assert run.answer == "100"


@pytest.mark.difference("answer-is-reserved")
def test_answer_is_the_answer_dict_and_a_list_bound_to_it_is_undone(rlm):
    run = rlm(cells_then(["answer = [1, 2, 3, 4, 5]"], lambda r: "FINAL_VAR(answer)"))
    assert run.answer == '{"content": "", "ready": false}'
    assert "`answer` is a name the REPL owns" in run.feedback(0)


def test_the_answer_dict_starts_empty_and_not_ready(rlm):
    run = rlm(cells_then(["print(answer['content'] == '', answer['ready'] is False)"], lambda r: "FINAL(x)"))
    assert run.feedback(0).splitlines()[-1] == "True True"


@pytest.mark.parametrize(
    ("code", "answer"),
    [
        ('answer["content"] = "the result"\nanswer["ready"] = True', "the result"),
        ('answer = {"content": "rebound", "ready": True}', "rebound"),
        ('answer["content"] = [1, 2, 3]\nanswer["ready"] = True', "[1, 2, 3]"),
        ('answer["content"] = 42\nanswer["ready"] = True', "42"),
    ],
)
def test_answer_ready_is_the_final_answer(rlm, code, answer):
    run = rlm(lambda r: repl(code))
    assert run.answer == answer and run.result.iterations == 1


def test_answer_content_without_ready_is_no_answer(rlm):
    run = rlm(cells_then(['answer["content"] = "wip"'], lambda r: "FINAL(second)"))
    assert run.answer == "second" and run.result.iterations == 2


def test_a_rebound_answer_dict_still_answers_later(rlm):
    run = rlm(
        cells_then(
            ['answer = {"content": "intermediate", "ready": False}'],
            lambda r: repl('answer["content"] = "done"; answer["ready"] = True'),
        )
    )
    assert run.answer == "done" and run.result.iterations == 2


def test_the_feedback_is_truncated_when_long(rlm):
    run = rlm(cells_then(["print('x' * 30000)"], lambda r: "FINAL(ok)"), output_limit=1000)
    assert len(run.feedback(0)) < 2000 and "characters truncated" in run.feedback(0)


@pytest.mark.difference("feedback-wording")
def test_the_feedback_names_the_cell_not_the_variables(rlm):
    run = rlm(cells_then(["x = 3\nprint(x)"], lambda r: "FINAL(ok)"))
    assert run.feedback(0) == "Output of code cell 1:\n3"
    assert "REPL variables" not in run.feedback(0)


def test_the_model_sees_its_own_reply_then_the_output(rlm):
    run = rlm(cells_then(["print(6 * 7)"], lambda r: "FINAL(ok)"))
    second = [r for r in run.requests if is_root(r) and turn(r) == 1][0]
    roles = [m["role"] for m in second["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert "print(6 * 7)" in second["messages"][2]["content"] and last(second).endswith("42")
