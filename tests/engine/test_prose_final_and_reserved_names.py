"""A FINAL written in prose is data, and the REPL's own names survive any cell (issue 28)."""

from __future__ import annotations

import pytest

from tests.engine.conftest import ScriptedModel, fence, turn


def _then(first_cell: str, prose: str):
    """A root that runs `first_cell`, then replies with `prose` (no code block)."""

    def root(messages, _):
        return fence(first_cell) if turn(messages) == 0 else prose

    return root


def _counting_sub():
    calls = []

    def sub(prompt):
        calls.append(prompt)
        return "SUB-ANSWER"

    return calls, sub


@pytest.mark.parametrize(
    ("prose", "answer"),
    [
        ('I have it.\nFINAL("max")', "max"),
        ("I have it.\nFINAL(max)", "max"),
        ('FINAL("context")', "context"),
        ("FINAL(context.upper())", "context.upper()"),
        ("FINAL(\"llm_query('x')\")", "llm_query('x')"),
        ("FINAL(llm_query('x'))", "llm_query('x')"),
        ("FINAL(rlm_query('x'))", "rlm_query('x')"),
        ("FINAL(llm_query)", "llm_query"),
        ("FINAL(__import__('os').getcwd())", "__import__('os').getcwd()"),
        ("FINAL(open('/etc/passwd').read())", "open('/etc/passwd').read()"),
        ('FINAL(f"{llm_query(\'x\')}")', "f\"{llm_query('x')}\""),
        ("FINAL(The answer is blue)", "The answer is blue"),
        ("FINAL('It\\'s 42')", "It's 42"),
        ("FINAL(6 * 7)", "6 * 7"),
    ],
)
def test_a_final_in_prose_is_never_run(run, prose, answer):
    calls, sub = _counting_sub()
    result, sink = run(ScriptedModel(_then("x = 1", prose), sub=sub), "SECRET CONTEXT TEXT")
    assert result.status == "succeeded"
    assert result.final_answer == answer
    assert calls == []  # no sub-call came of it
    assert not [n for n in sink.nodes.values() if n.kind == "llm_call"]


def test_a_bare_name_in_prose_is_the_variable_when_it_exists(run):
    result, _ = run(ScriptedModel(_then("total = 6 * 7", "Done.\nFINAL(total)")), "abc")
    assert result.final_answer == "42"


def test_a_name_in_prose_bound_to_code_not_data_is_the_name(run):
    """FINAL(x) in prose reads plain data only: a function, a class or an object of the code's own
    answers as its name, never as a repr (and no method of the code's own could run)."""
    cell = "def helper():\n    return llm_query('leak')\nclass Box:\n    pass\nbox = Box()\nmixed = [1, box]"
    for prose, answer in (("FINAL(helper)", "helper"), ("FINAL(box)", "box"), ("FINAL(mixed)", "mixed")):
        calls, sub = _counting_sub()
        result, sink = run(ScriptedModel(_then(cell, prose), sub=sub), "abc")
        assert result.final_answer == answer
        assert calls == [] and not [n for n in sink.nodes.values() if n.kind == "llm_call"]


def test_final_var_in_prose_of_a_set_or_tuple_answers(run):
    result, _ = run(ScriptedModel(_then("found = {3}\npair = (1, 'a')", "FINAL_VAR(found)")), "abc")
    assert result.final_answer == "{3}"
    result, _ = run(ScriptedModel(_then("pair = (1, 'a')", "FINAL(pair)")), "abc")
    assert result.final_answer == '[1, "a"]'


def test_a_bare_name_that_is_no_variable_is_the_text(run):
    result, _ = run(ScriptedModel(_then("x = 1", "FINAL(unknown_name)")), "abc")
    assert result.final_answer == "unknown_name"


def test_final_var_in_prose_reads_the_variable_and_a_missing_one_is_an_error_not_an_end(run):
    def root(messages, _):
        step = turn(messages)
        if step == 0:
            return "FINAL_VAR(missing)"
        if step == 1:
            assert "no variable named 'missing'" in messages[-1]["content"]
            return fence("found = ['a', 'b']")
        return "FINAL_VAR(found)"

    result, _ = run(ScriptedModel(root), "abc")
    assert result.final_answer == '["a", "b"]'
    assert result.iterations == 3


def test_final_var_of_a_repl_function_in_prose_is_refused(run):
    def root(messages, _):
        if turn(messages) == 0:
            return "FINAL_VAR(llm_query)"
        assert "is a REPL function, not a variable" in messages[-1]["content"]
        return 'FINAL("done")'

    result, _ = run(ScriptedModel(root), "abc")
    assert result.final_answer == "done"


@pytest.mark.parametrize(
    "rebind",
    [
        "context = 'gone'",
        "del context",
        "llm_query = None",
        "llm_query_batched = 'x'",
        "rlm_query = lambda p: 'hijacked'",
        "rlm_query_batched = 'garbage'",
        "FINAL = print",
        "FINAL_VAR = None",
        "SHOW_VARS = 1",
        "memory = {}",
        "context_0 = 'gone'",
        "history = None",
        "answer = 5",
    ],
)
def test_the_repl_names_are_put_back_after_every_cell_and_the_model_is_told(run, rebind):
    name = rebind.split()[1] if rebind.startswith("del ") else rebind.split(" =")[0]
    check = (
        "assert context == 'the input' and context_0 == 'the input' and history == []\n"
        "assert llm_query('q') == 'SUB-ANSWER'\n"
        "assert llm_query_batched(['q']) == ['SUB-ANSWER']\n"
        "assert answer == {'content': '', 'ready': False}\n"
        "SHOW_VARS()\n"
        "memory.append('learnings', 'kept')\n"
        "FINAL_VAR('context')"
    )

    def root(messages, _):
        if turn(messages) == 0:
            return fence(rebind)
        assert f"`{name}` is a name the REPL owns" in messages[-1]["content"]
        return fence(check)

    calls, sub = _counting_sub()
    result, _ = run(ScriptedModel(root, sub=sub), "the input")
    assert result.status == "succeeded", result.error
    assert result.final_answer == "the input"
    assert name not in result.variables


def test_a_cell_that_rebinds_nothing_gets_no_note(run):
    def root(messages, _):
        if turn(messages) == 0:
            return fence("x = context.upper()\nprint(x)")
        assert "REPL owns" not in messages[-1]["content"]
        return "FINAL(x)"

    result, _ = run(ScriptedModel(root), "abc")
    assert result.final_answer == "ABC"


def test_answer_may_be_rebound_to_a_dict_that_answers(run):
    code = 'answer = {"content": "rebound", "ready": True}'
    result, _ = run(ScriptedModel(lambda m, _: fence(code)), "abc")
    assert result.final_answer == "rebound"
