"""The REPL as the reference's LocalREPL tests check it: running code, errors, persistence between
cells, builtins and imports, the context's types, and its own names put back after a cell."""

from __future__ import annotations

import pytest

from tests.compat.conftest import cells_then, is_root, last, repl

END = "FINAL(\"end\")"


def final_end(_request):
    return END


def test_a_cell_runs_and_its_variables_persist(rlm):
    run = rlm(cells_then(["x = 1 + 2"], lambda r: "FINAL_VAR(x)"))
    assert run.answer == "3"
    assert run.feedback(0) == "Output of code cell 1:\n(no output)"


def test_print_output_comes_back(rlm):
    run = rlm(cells_then(["print('Hello, World!')"], final_end))
    assert "Hello, World!" in run.feedback(0)


@pytest.mark.parametrize(("code", "error"), [("1 / 0", "ZeroDivisionError"), ("def broken(", "SyntaxError")])
def test_an_error_comes_back_to_the_model_and_the_run_goes_on(rlm, code, error):
    run = rlm(cells_then([code], final_end))
    assert error in run.feedback(0)
    assert run.answer == "end" and run.result.status == "succeeded"


def test_variables_persist_between_turns(rlm):
    run = rlm(cells_then(["x = 42", "y = x + 8", "print(y)"], final_end))
    assert run.feedback(2).endswith("50")


def test_functions_persist_between_turns(rlm):
    run = rlm(cells_then(["def greet(name):\n    return f'Hello, {name}!'", "print(greet('World'))"], final_end))
    assert run.feedback(1).endswith("Hello, World!")


def test_a_list_comprehension_persists(rlm):
    run = rlm(cells_then(["squares = [x**2 for x in range(5)]", "print(squares, sum(squares))"], final_end))
    assert run.feedback(1).endswith("[0, 1, 4, 9, 16] 30")


def test_safe_builtins_and_imports_work(rlm):
    code = "import math\nprint(len([1, 2, 3]), sum([1, 2, 3, 4]), sorted([3, 1, 2]), round(math.pi, 3))"
    run = rlm(cells_then([code], final_end))
    assert run.feedback(0).endswith("3 10 [1, 2, 3] 3.142")


@pytest.mark.parametrize(
    ("context", "probe", "shown"),
    [
        ("This is the context data.", "print(context)", "This is the context data."),
        ({"key": "value", "number": 42}, "print(context['key'], context['number'])", "value 42"),
        ([1, 2, 3, "four"], "print(context)", "[1, 2, 3, 'four']"),
    ],
)
def test_the_context_is_in_the_repl_as_given(rlm, context, probe, shown):
    run = rlm(cells_then([probe], final_end), context=context)
    assert run.feedback(0).endswith(shown)


@pytest.mark.difference("message-list-context")
def test_a_list_of_message_dicts_stays_as_given(rlm):
    messages = [{"content": "Hello"}, {"content": "World"}]
    run = rlm(cells_then(["print([m['content'] for m in context])"], final_end), context=messages)
    assert run.feedback(0).endswith("['Hello', 'World']")


def test_context_is_put_back_after_a_cell_overwrites_it(rlm):
    run = rlm(cells_then(['context = "hijacked"', "print(context)"], final_end), context="original context content")
    assert run.feedback(1).endswith("original context content")


@pytest.mark.parametrize(
    "overwrite",
    ["llm_query = lambda x: 'hijacked'", "rlm_query = lambda x: 'hijacked'", "rlm_query_batched = 'garbage'"],
)
def test_the_sub_call_functions_are_put_back_after_a_cell_overwrites_them(rlm, overwrite):
    name = overwrite.split(" =")[0]
    call = "r = rlm_query_batched(['q'])[0]" if name == "rlm_query_batched" else f"r = {name}('q')"

    def script(request):
        if not is_root(request):
            return "real"
        if "child agent" in request["messages"][1]["content"]:
            return "FINAL(\"real\")"
        return {0: repl(overwrite), 1: repl(call)}.get(len(request["messages"]) // 2 - 1, "FINAL_VAR(r)")

    run = rlm(script)
    assert run.answer == "real"


@pytest.mark.difference("underscore-names")
def test_names_starting_with_an_underscore_are_refused(rlm):
    run = rlm(cells_then(["_private = 1"], final_end))
    assert "_private" in run.feedback(0) and "invalid variable name" in run.feedback(0).lower()


def test_a_new_run_starts_from_a_fresh_repl(rlm):
    rlm(cells_then(["important_result = 42\ndef my_helper(): return 'useful'"], final_end))
    run = rlm(cells_then(["print(important_result)", "my_helper()"], final_end))
    assert "NameError" in run.feedback(0) and "important_result" in run.feedback(0)
    assert "NameError" in run.feedback(1) and "my_helper" in run.feedback(1)


def test_show_vars_lists_the_models_own_variables(rlm):
    run = rlm(cells_then(["x = 1\nname = 'test'\nSHOW_VARS()"], final_end))
    shown = run.feedback(0)
    assert "x" in shown and "name" in shown
    assert "answer" not in shown and "llm_query" not in shown


def test_a_failed_sub_call_is_an_error_string_not_an_exception(rlm, scripted):
    from tests.support.scripted_model import ScriptedError

    def script(request):
        if not is_root(request):
            raise ScriptedError(400, "subcall failed")
        if len(request["messages"]) == 2:
            return repl("response = llm_query('hello')\nprint(response)")
        return "FINAL_VAR(response)"

    run = rlm(script)
    assert run.answer.startswith("Error") and "subcall failed" in run.answer
    assert "Traceback" not in run.feedback(0)
    assert last(run.requests[-1]) == run.feedback(0)
