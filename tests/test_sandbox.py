"""The REPL sandbox's behaviour: persistence, output, FINAL, the REPL API stubs, errors, restarts.

The sandbox is real (a subprocess per test module); the call handler is a plain function that
records what it was asked, the outermost edge.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from rlm_worker.engine.ports import CallRejected
from rlm_worker.engine.types import CellResult
from rlm_worker.sandbox import SandboxConfig, SubprocessSandbox, make_sandbox_factory


class Recorder:
    """An on_call handler that records calls and answers from a table of functions."""

    def __init__(self, **answers):
        self.calls: list[tuple[str, dict]] = []
        self.answers = answers

    def __call__(self, fn, args):
        self.calls.append((fn, args))
        answer = self.answers.get(fn)
        if callable(answer):
            return answer(args)
        return answer


@pytest.fixture(scope="module")
def factory():
    return make_sandbox_factory(SandboxConfig(cell_timeout_seconds=30))


@pytest.fixture()
def sandbox(factory):
    box = factory("the context", {}, {"DEFAULT_CHUNK_SIZE": 1234})
    yield box
    box.close()


def run(box, code, on_call=None):
    result = box.execute(code, on_call or Recorder())
    assert isinstance(result, CellResult)
    return result


def test_variables_persist_and_prints_are_captured(sandbox):
    assert run(sandbox, "x = 41\nprint('hello', 'world', sep='-')").stdout == "hello-world\n"
    result = run(sandbox, "x += 1\nprint(x)\nprint(printed.strip() == '42')")
    assert result.stdout == "42\nTrue\n"
    assert result.error is None and result.final is None


def test_functions_and_classes_persist(sandbox):
    run(
        sandbox,
        "class Acc:\n    def __init__(self):\n        self.items = []\n    def add(self, v):\n"
        "        self.items.append(v)\n        return self\n\ndef double(v):\n    return v * 2",
    )
    result = run(sandbox, "a = Acc().add(double(3)).add(4)\nprint(a.items)")
    assert result.stdout == "[6, 4]\n"


def test_context_and_constants(sandbox):
    result = run(sandbox, "print(context)\nprint(DEFAULT_CHUNK_SIZE)")
    assert result.stdout == "the context\n1234\n"


@pytest.mark.parametrize(
    "context, code, expected",
    [
        (["a", "bb", "ccc"], "print(len(context), context[2])", "3 ccc\n"),
        ({"doc1": "x", "doc2": "yy"}, "print(sorted(context), context['doc2'])", "['doc1', 'doc2'] yy\n"),
    ],
)
def test_list_and_dict_contexts(factory, context, code, expected):
    box = factory(context, {}, {})
    try:
        assert run(box, code).stdout == expected
    finally:
        box.close()


def test_initial_variables_are_globals(factory):
    box = factory("c", {"notes": ["a", "b"], "count": 2}, {})
    try:
        assert run(box, "print(notes, count)").stdout == "['a', 'b'] 2\n"
    finally:
        box.close()


def test_final_stops_the_cell(sandbox):
    result = run(sandbox, "print('before')\nFINAL('the answer')\nprint('after')")
    assert result.final == "the answer"
    assert result.stdout == "before\n"
    assert result.error is None


def test_final_of_dict_is_json_and_of_number_is_str(sandbox):
    assert json.loads(run(sandbox, "FINAL({'a': [1, 2]})").final) == {"a": [1, 2]}
    assert run(sandbox, "FINAL(3.5)").final == "3.5"


def test_final_wins_over_a_bare_except(sandbox):
    result = run(sandbox, "try:\n    FINAL('kept')\nexcept:\n    print('swallowed')\nprint('went on')")
    assert result.final == "kept"
    assert "swallowed" in result.stdout


def test_final_is_not_caught_by_except_exception(sandbox):
    result = run(sandbox, "try:\n    FINAL('x')\nexcept Exception:\n    print('caught')")
    assert result.final == "x" and result.stdout == ""


def test_final_var_known_name(sandbox):
    run(sandbox, "result = ['a', 'b']")
    assert json.loads(run(sandbox, "FINAL_VAR('result')").final) == ["a", "b"]


def test_final_var_unknown_name_is_an_error_not_a_final(sandbox):
    result = run(sandbox, "FINAL_VAR('nope')")
    assert result.final is None
    assert "NameError" in result.error and "nope" in result.error


def test_final_var_wrong_type(sandbox):
    result = run(sandbox, "FINAL_VAR(42)")
    assert result.final is None and "TypeError" in result.error


def test_answer_dict(sandbox):
    assert run(sandbox, "answer['content'] = 'partial'").final is None
    assert run(sandbox, "answer['ready'] = True").final == "partial"


def test_llm_query_stub(sandbox):
    handler = Recorder(llm_query=lambda a: "reply to " + a["prompt"])
    result = run(sandbox, "r = llm_query('hi', model='small')\nprint(r)", handler)
    assert result.stdout == "reply to hi\n"
    assert handler.calls == [("llm_query", {"prompt": "hi", "model": "small"})]


def test_llm_query_batched_stub(sandbox):
    handler = Recorder(llm_query_batched=lambda a: [p.upper() for p in a["prompts"]])
    result = run(sandbox, "print(llm_query_batched(['a', 'b']))", handler)
    assert result.stdout == "['A', 'B']\n"
    assert handler.calls == [("llm_query_batched", {"prompts": ["a", "b"], "model": None})]


def test_rlm_query_stubs(sandbox):
    handler = Recorder(rlm_query="child", rlm_query_batched=lambda a: ["c"] * len(a["prompts"]))
    code = (
        "print(rlm_query('p', context={'k': [1]}, inherit_memory=True))\n"
        "print(rlm_query_batched(['p1', 'p2'], contexts=['x', None], model='m'))"
    )
    assert run(sandbox, code, handler).stdout == "child\n['c', 'c']\n"
    assert handler.calls == [
        ("rlm_query", {"prompt": "p", "context": {"k": [1]}, "model": None, "inherit_memory": True}),
        (
            "rlm_query_batched",
            {"prompts": ["p1", "p2"], "model": "m", "contexts": ["x", None], "inherit_memory": None},
        ),
    ]


def test_memory_stub(sandbox):
    blocks = {"learnings": "L"}

    def memory_call(fn):
        return lambda a: {
            "memory_read": lambda: blocks.get(a["label"], ""),
            "memory_set": lambda: blocks.__setitem__(a["label"], a["text"]),
            "memory_append": lambda: blocks.__setitem__(a["label"], blocks.get(a["label"], "") + a["text"]),
            "memory_replace": lambda: blocks.__setitem__(
                a["label"], blocks[a["label"]].replace(a["old"], a["new"])
            ),
            "memory_blocks": lambda: dict(blocks),
        }[fn]()

    handler = Recorder(
        **{
            fn: memory_call(fn)
            for fn in ["memory_read", "memory_set", "memory_append", "memory_replace", "memory_blocks"]
        }
    )
    code = (
        "print(memory['learnings'])\n"
        "memory['plan'] = 'one'\n"
        "memory.append('plan', ' two')\n"
        "memory.replace('plan', 'one', 'ONE')\n"
        "print(memory.read('plan'))\n"
        "print(memory.labels(), 'learnings' in memory, 'other' in memory)\n"
        "print(memory.blocks()['plan'])"
    )
    result = run(sandbox, code, handler)
    assert result.error is None, result.error
    assert result.stdout == "L\nONE two\n['learnings', 'plan'] True False\nONE two\n"
    assert [c[0] for c in handler.calls][:5] == [
        "memory_read",
        "memory_set",
        "memory_append",
        "memory_replace",
        "memory_read",
    ]
    assert ("memory_set", {"label": "plan", "text": "one"}) in handler.calls
    assert ("memory_replace", {"label": "plan", "old": "one", "new": "ONE"}) in handler.calls


def test_call_rejected_becomes_runtime_error(sandbox):
    def reject(fn, args):
        raise CallRejected("budget exhausted: no more sub-calls")

    result = run(sandbox, "try:\n    llm_query('x')\nexcept RuntimeError as e:\n    print('got', e)", reject)
    assert result.stdout == "got budget exhausted: no more sub-calls\n"
    result = run(sandbox, "llm_query('x')", reject)
    assert "RuntimeError: budget exhausted" in result.error


def test_handler_crash_becomes_runtime_error_and_worker_goes_on(sandbox):
    def broken(fn, args):
        raise KeyError("bug")

    result = run(sandbox, "llm_query('x')", broken)
    assert "RuntimeError" in result.error and "llm_query failed in the worker" in result.error
    assert run(sandbox, "print(1 + 1)").stdout == "2\n"


@pytest.mark.parametrize(
    "code, message",
    [
        ("llm_query(42)", "prompt must be a str"),
        ("llm_query('x', model=3)", "model must be a str"),
        ("llm_query_batched('abc')", "prompts must be a list of str"),
        ("llm_query_batched(['a', 1])", "must be a str"),
        ("rlm_query('p', inherit_memory='yes')", "inherit_memory"),
        ("rlm_query_batched(['a'], contexts=['x', 'y'])", "contexts must be a list as long as prompts"),
        ("rlm_query('p', context={1, 2})", "JSON-serialisable"),
        ("memory[3]", "label must be a str"),
        ("memory.append('a', None)", "text must be a str"),
    ],
)
def test_stub_arguments_are_type_checked(sandbox, code, message):
    handler = Recorder()
    result = run(sandbox, code, handler)
    assert "TypeError" in result.error and message in result.error
    assert handler.calls == []


def test_allowed_modules_import(sandbox):
    code = (
        "import re, json, math, collections, itertools, functools, statistics, string, textwrap\n"
        "import datetime, random, heapq, bisect\n"
        "from collections import Counter, defaultdict\n"
        "import collections.abc\n"
        "print(re.findall(r'\\d+', 'a1b22'), json.dumps({'a': 1}), math.sqrt(16))\n"
        "print(Counter('aab').most_common(1), statistics.mean([1, 2, 3]), heapq.nsmallest(1, [3, 1]))\n"
        "print(bisect.bisect([1, 3], 2), list(itertools.islice(itertools.count(), 3)))\n"
        "print(functools.reduce(lambda a, b: a + b, [1, 2, 3]), textwrap.shorten('a b c d', 5))\n"
        "print(datetime.date(2024, 1, 2).isoformat(), string.ascii_lowercase[:3], random.Random(1).randint(1, 1))\n"
        "print(isinstance({}, collections.abc.Mapping))"
    )
    result = run(sandbox, code)
    assert result.error is None, result.error
    assert result.stdout.splitlines() == [
        "['1', '22'] {\"a\": 1} 4.0",
        "[('a', 2)] 2 [1]",
        "1 [0, 1, 2]",
        "6 [...]",
        "2024-01-02 abc 1",
        "True",
    ]


def test_common_python_works(sandbox):
    code = (
        "data = {'b': 2, 'a': 1}\n"
        "pairs = sorted(data.items())\n"
        "for k, v in pairs:\n    print(k, v)\n"
        "sq = [i * i for i in range(5) if i % 2 == 0]\n"
        "first, *rest = sq\n"
        "print(first, rest, sum(sq), max(sq), list(zip('ab', 'cd')), f'{3.14159:.2f}', '{} {x}'.format(1, x=2))\n"
        "gen = (c for c in 'xy')\nprint(next(gen), list(reversed([1, 2])), dict(enumerate('ab')))\n"
        "text = 'a,b;c'\nprint(text.split(','), '%s-%d' % ('a', 1), list(map(str.upper, ['q'])))\n"
        "t = (1, 2)\nt2 = tuple(list(t) + [3])\nprint(t2, set([1, 1]), isinstance(t2, tuple), type(t2) is tuple)"
    )
    result = run(sandbox, code)
    assert result.error is None, result.error
    assert result.stdout.splitlines() == [
        "a 1",
        "b 2",
        "0 [4, 16] 20 16 [('a', 'c'), ('b', 'd')] 3.14 1 2",
        "x [2, 1] {0: 'a', 1: 'b'}",
        "['a', 'b;c'] a-1 ['Q']",
        "(1, 2, 3) {1} True True",
    ]


def test_augmented_assignment_to_items_and_attributes(sandbox):
    code = (
        "counts = {}\nfor w in 'a b a'.split():\n    counts[w] = counts.get(w, 0)\n    counts[w] += 1\n"
        "class C:\n    def __init__(self):\n        self.n = 0\n    def inc(self):\n        self.n += 2\n"
        "c = C()\nc.inc()\nitems = [1]\nitems[0] *= 5\nprint(counts, c.n, items)"
    )
    result = run(sandbox, code)
    assert result.error is None, result.error
    assert result.stdout == "{'a': 2, 'b': 1} 2 [5]\n"


def test_show_vars(sandbox):
    run(sandbox, "chunks = ['a', 'b']\ncount = 3")
    result = run(sandbox, "SHOW_VARS()")
    assert "chunks: list (len 2)" in result.stdout and "count: int" in result.stdout
    assert "llm_query" not in result.stdout and "context" not in result.stdout


def test_traceback_shows_only_the_models_lines(sandbox):
    result = run(sandbox, "x = 1\n\ny = x / 0")
    assert result.error == (
        "Traceback (most recent call last):\n  line 3, in <cell>\n    y = x / 0\nZeroDivisionError: division by zero"
    )
    run(sandbox, "def inner():\n    return {}['k']\n")
    error = run(sandbox, "import json\ninner()").error
    assert "line 2, in <cell>" in error and "line 2, in inner" in error and "KeyError: 'k'" in error
    assert "rlm_worker" not in error and ".py" not in error


def test_deep_recursion_traceback_is_short(sandbox):
    error = run(sandbox, "def f(n):\n    return f(n + 1)\nf(0)").error
    assert "RecursionError" in error and "more frames" in error
    assert len(error.splitlines()) < 30


def test_syntax_errors_come_back_as_text(sandbox):
    assert "SyntaxError" in run(sandbox, "def (:").error
    assert "invalid attribute name" in run(sandbox, "x = ().__class__").error


def test_get_variables_drops_non_json(sandbox):
    run(
        sandbox,
        "a = 1\nb = {'k': [1, 2.5, None]}\nc = {1, 2}\nimport math\ndef f():\n    pass\n"
        "class K:\n    pass\nk = K()\nnan = float('nan')",
    )
    variables, dropped = sandbox.get_variables()
    assert variables["a"] == 1 and variables["b"] == {"k": [1, 2.5, None]}
    assert variables["answer"] == {"content": "", "ready": False}
    assert sorted(dropped) == ["K", "c", "f", "k", "nan"]
    assert "f" not in variables and "K" not in variables
    for hidden in ("math", "context", "llm_query", "memory", "DEFAULT_CHUNK_SIZE", "FINAL"):
        assert hidden not in variables and hidden not in dropped


def test_huge_context_goes_through_init_fast(factory):
    context = "abcdefghij" * 1_000_000
    started = time.perf_counter()
    box = factory(context, {}, {})
    try:
        assert run(box, "print(len(context), context[-3:])").stdout == "10000000 hij\n"
    finally:
        box.close()
    assert time.perf_counter() - started < 5  # well under a second on an idle machine


def test_restart_after_death_keeps_the_sandbox_usable():
    box = SubprocessSandbox(
        "ctx", {"seed": 7}, {}, SandboxConfig(cell_cpu_seconds=30, cell_timeout_seconds=1.5)
    )
    try:
        run(box, "kept = 1")
        first_pid = box.pid
        result = run(box, "while True:\n    pass")
        assert result.limit_hit == "cell exceeded 1.5 s wall-clock"
        assert "the REPL was restarted; variables were lost" in result.error
        assert box.pid != first_pid
        after = run(box, "print(seed, context)\nprint(kept)")
        assert after.stdout == "7 ctx\n" and "NameError" in after.error
    finally:
        box.close()


def test_wall_clock_excludes_time_spent_in_calls():
    box = SubprocessSandbox("ctx", {}, {}, SandboxConfig(cell_timeout_seconds=1))

    def slow(fn, args):
        time.sleep(0.6)
        return "done"

    try:
        result = run(box, "for i in range(3):\n    r = llm_query('x')\nprint(r)", slow)
        assert result.stdout == "done\n" and result.error is None
    finally:
        box.close()


def test_close_removes_the_process(factory):
    box = factory("c", {}, {})
    pid = box.pid
    if box.jailed:  # bubblewrap's private /tmp: nothing of it is on the host
        assert os.stat(f"/proc/{pid}/cwd").st_dev != os.stat("/tmp").st_dev
    else:
        assert not os.path.exists(os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)"))  # already gone
    box.close()
    box.close()
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_the_worker_marks_itself_non_dumpable_before_starting_sandboxes():
    """Same-user sandboxes then cannot read the worker's /proc/<pid>/environ (docs/security.md)."""
    import subprocess
    import sys

    code = (
        "from rlm_worker.services import sandbox_factory, forbid_same_user_inspection\n"
        "import ctypes\n"
        "libc = ctypes.CDLL(None)\n"
        "assert libc.prctl(3, 0, 0, 0, 0) == 1\n"
        "sandbox_factory()\n"
        "assert libc.prctl(3, 0, 0, 0, 0) == 0\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
