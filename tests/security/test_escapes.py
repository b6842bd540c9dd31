"""Escape attempts against the REPL sandbox, each checked for the specific thing it tried.

Every attack prints a sentinel (ESCAPED) only if the forbidden step succeeded, so each row asserts
that the sentinel never appears and that the error names the reason it was stopped. After every
attack the same sandbox must still answer `print(1+1)` and nothing may carry the worker's secrets.
"""

from __future__ import annotations

import os
import stat
import uuid

import pytest

from tests.security.conftest import SECRET, CountingHandler, assert_no_leak, assert_still_works

WORKER_PID = os.getpid()
OUTSIDE_FILE = f"/tmp/rlm-escape-{uuid.uuid4().hex}"

COMPILE = "could not be compiled"
PRIVATE = 'names starting with "_" are private'
DENIED = "is not available in the REPL"

# (id, code, substrings of which at least one must appear in the error)
ATTACKS = [
    # -- secrets and files --------------------------------------------------------------------
    (
        "env-via-os",
        "import os\nprint('ESCAPED', os.environ['OPENAI_API_KEY'])",
        ["import of 'os' is not allowed"],
    ),
    (
        "proc-self-environ",
        "print('ESCAPED', open('/proc/self/environ').read())",
        ["name 'open' is not defined"],
    ),
    (
        "proc-worker-environ",
        f"print('ESCAPED', open('/proc/{WORKER_PID}/environ').read())",
        ["name 'open' is not defined"],
    ),
    ("etc-passwd", "print('ESCAPED', open('/etc/passwd').read())", ["name 'open' is not defined"]),
    (
        "io-open",
        "import io\nprint('ESCAPED', io.open('/etc/passwd').read())",
        ["import of 'io' is not allowed"],
    ),
    (
        "write-outside",
        f"f = open({OUTSIDE_FILE!r}, 'w')\nf.write('x')\nprint('ESCAPED')",
        ["name 'open' is not defined"],
    ),
    (
        "print-to-file",
        f"print('x', file={OUTSIDE_FILE!r})\nprint('ESCAPED')",
        ["print(file=...) is not supported"],
    ),
    (
        "print-to-filelike",
        "class W:\n    def write(self, s):\n        print('ESCAPED')\nprint('x', file=W())",
        ["print(file=...) is not supported"],
    ),
    # -- forbidden modules ----------------------------------------------------------------------
    ("import-sys", "import sys\nprint('ESCAPED', sys.modules)", ["import of 'sys' is not allowed"]),
    ("import-subprocess", "import subprocess\nprint('ESCAPED')", ["import of 'subprocess' is not allowed"]),
    ("import-ctypes", "import ctypes\nprint('ESCAPED')", ["import of 'ctypes' is not allowed"]),
    ("import-importlib", "import importlib\nprint('ESCAPED')", ["import of 'importlib' is not allowed"]),
    ("import-socket", "import socket\nprint('ESCAPED')", ["import of 'socket' is not allowed"]),
    ("import-builtins", "import builtins\nprint('ESCAPED')", ['"builtins" is a reserved name']),
    (
        "import-builtins-as",
        "from builtins import open as o\nprint('ESCAPED', o)",
        ["import of 'builtins' is not allowed"],
    ),
    ("import-posix", "import posix\nprint('ESCAPED')", ["import of 'posix' is not allowed"]),
    ("import-_io", "import _io\nprint('ESCAPED')", ['"_io" is an invalid variable name']),
    ("import-pickle", "import pickle\nprint('ESCAPED')", ["import of 'pickle' is not allowed"]),
    ("import-marshal", "import marshal\nprint('ESCAPED')", ["import of 'marshal' is not allowed"]),
    ("import-gc", "import gc\nprint('ESCAPED', gc.get_objects())", ["import of 'gc' is not allowed"]),
    ("import-inspect", "import inspect\nprint('ESCAPED')", ["import of 'inspect' is not allowed"]),
    (
        "import-operator",
        "import operator\nprint('ESCAPED', operator.attrgetter('__class__')(1))",
        ["import of 'operator' is not allowed"],
    ),
    (
        "import-json-submodule",
        "import json.decoder\nprint('ESCAPED', json.decoder)",
        ["import of 'json.decoder' is not allowed"],
    ),
    ("dunder-import", "print('ESCAPED', __import__('os'))", [COMPILE]),
    (
        "relative-import",
        "from . import child\nprint('ESCAPED')",
        ["relative imports are not allowed", COMPILE],
    ),
    # -- object graph walks -----------------------------------------------------------------------
    ("mro-walk", "print('ESCAPED', ().__class__.__mro__[-1].__subclasses__())", [COMPILE]),
    ("getattr-concat", "c = getattr((), '__cl' + 'ass__')\nprint('ESCAPED', c)", [PRIVATE]),
    (
        "subclasses-via-mro",
        "o = type(()).mro()[-1]\nprint('ESCAPED', getattr(o, '__subclasses__')())",
        [PRIVATE],
    ),
    (
        "hasattr-probe",
        "print('ESCAPED' if hasattr(len, '__self__') else 'no')\nraise ValueError('blocked')",
        ["blocked"],
    ),
    ("gi-frame-literal", "g = (x for x in [1])\nprint('ESCAPED', g.gi_frame.f_globals)", [COMPILE]),
    (
        "gi-frame-getattr",
        "g = (x for x in [1])\nf = getattr(g, 'gi_' + 'frame')\nprint('ESCAPED', f)",
        ['"gi_frame" is not available'],
    ),
    (
        "gi-code-getattr",
        "g = (x for x in [1])\nprint('ESCAPED', getattr(g, 'gi_code'))",
        ['"gi_code" is not available'],
    ),
    ("coroutine-cr-frame", "async def c():\n    pass\nprint('ESCAPED', c().cr_frame)", [COMPILE]),
    ("async-generator-ag-frame", "async def a():\n    yield 1\nprint('ESCAPED', a().ag_frame)", [COMPILE]),
    (
        "traceback-attr",
        "try:\n    1/0\nexcept Exception as e:\n    print('ESCAPED', e.__traceback__)",
        [COMPILE],
    ),
    (
        "traceback-getattr",
        "try:\n    1/0\nexcept Exception as e:\n    print('ESCAPED', getattr(e, '__traceback__'))",
        [PRIVATE],
    ),
    (
        "tb-frame-via-exit",
        "T = type(type(0))\n"
        "CM = T('CM', (), {'__enter__': lambda s: s,\n"
        "    '__exit__': lambda s, t, v, tb: print('ESCAPED', getattr(tb, 'tb_' + 'frame'))})\n"
        "with CM():\n    1/0",
        ['"tb_frame" is not available'],
    ),
    ("exc-info", "print('ESCAPED', sys.exc_info())", ["name 'sys' is not defined"]),
    (
        "attribute-error-obj",
        "try:\n    llm_query.nothing\nexcept AttributeError as e:\n    print('ESCAPED', e.obj)",
        ['"obj" is not available'],
    ),
    # -- str.format and friends -------------------------------------------------------------------
    ("format-class", "print('ESCAPED', '{0.__class__}'.format(1))", ["fields may not use '.' or '['"]),
    (
        "format-gi-frame",
        "g = (x for x in [1])\nprint('ESCAPED', '{0.gi_frame}'.format(g))",
        ["fields may not use"],
    ),
    ("format-item", "print('ESCAPED', '{0[x]}'.format({'x': 1}))", ["fields may not use"]),
    ("format-nested-spec", "print('ESCAPED', '{0:{1.real}}'.format(1, 2))", ["fields may not use"]),
    (
        "format-unbound",
        "print('ESCAPED', getattr(str, 'format')('{0.__class__}', 1))",
        ["fields may not use"],
    ),
    ("format-map", "print('ESCAPED', '{x.__class__}'.format_map({'x': 1}))", ["fields may not use"]),
    (
        "format-str-subclass",
        "class S(str):\n    pass\nprint('ESCAPED', S('{0.__class__}').format(1))",
        ["fields may not use"],
    ),
    (
        "string-formatter",
        "import string\nprint('ESCAPED', string.Formatter().get_field('0.__class__', [1], {}))",
        ["has no attribute 'Formatter'"],
    ),
    (
        "userstring-format",
        "import collections\nprint('ESCAPED', collections.UserString('{0.__class__}').format(1))",
        ["has no attribute 'UserString'"],
    ),
    # -- allowed modules' internals --------------------------------------------------------------
    (
        "collections-abc-sys",
        "import collections.abc\nprint('ESCAPED', collections.abc.sys)",
        ["has no attribute 'sys'"],
    ),
    (
        "from-datetime-import-sys",
        "from datetime import sys\nprint('ESCAPED', sys)",
        ["cannot import name 'sys'"],
    ),
    ("datetime-sys", "import datetime\nprint('ESCAPED', datetime.sys)", ["has no attribute 'sys'"]),
    ("random-os", "import random\nprint('ESCAPED', random._os)", [COMPILE]),
    ("random-os-getattr", "import random\nprint('ESCAPED', getattr(random, '_os'))", [PRIVATE]),
    (
        "json-internals",
        "import json\nprint('ESCAPED', json.decoder, json.scanner)",
        ["has no attribute 'decoder'"],
    ),
    ("re-enum-module", "import re\nprint('ESCAPED', re.enum)", ["has no attribute 'enum'"]),
    ("statistics-sys", "from statistics import sys\nprint('ESCAPED', sys)", ["cannot import name 'sys'"]),
    ("string-re-private", "import string\nprint('ESCAPED', getattr(string, '_re'))", [PRIVATE]),
    (
        "functools-update-wrapper",
        "import functools\ndef w():\n    pass\n"
        "functools.update_wrapper(w, len, assigned=('__globals__',), updated=())\nprint('ESCAPED')",
        ["unexpected keyword argument 'assigned'"],
    ),
    (
        "functools-wraps-library-object",
        "import functools, json\nfunctools.wraps(len)(json.dumps)\nprint('ESCAPED')",
        ["the wrapper must be a function defined in the REPL"],
    ),
    (
        "functools-singledispatch-eval",
        "import functools\n@functools.singledispatch\ndef f(x):\n    pass\n"
        "@f.register\ndef _(x: '().__class__.__base__.__subclasses__()'):\n    pass\nprint('ESCAPED')",
        ["has no attribute 'singledispatch'"],
    ),
    (
        "functools-partial-getattr",
        "import functools\np = functools.partial(getattr, ())\nprint('ESCAPED', p('__class__'))",
        [PRIVATE],
    ),
    # -- the REPL API's stubs ---------------------------------------------------------------------
    ("stub-globals", "print('ESCAPED', llm_query.__globals__)", [COMPILE]),
    ("stub-globals-getattr", "print('ESCAPED', getattr(llm_query, '__globals__'))", [PRIVATE]),
    ("stub-self", "print('ESCAPED', getattr(memory.append, '__self__'))", [PRIVATE]),
    ("stub-call-method", "print('ESCAPED', getattr(getattr(llm_query, '__call__'), '__func__'))", [PRIVATE]),
    ("memory-dict", "print('ESCAPED', memory.__dict__)", [COMPILE]),
    ("memory-conn", "print('ESCAPED', getattr(memory, '_conn'))", [PRIVATE]),
    (
        "stub-class-method-globals",
        "f = type(memory).append\nprint('ESCAPED', getattr(f, '__glo' + 'bals__'))",
        [PRIVATE],
    ),
    (
        "stub-attribute-write",
        "setattr(llm_query, 'x', 1)\nprint('ESCAPED')",
        ["cannot modify a LLMQuery object"],
    ),
    # -- language tricks --------------------------------------------------------------------------
    (
        "positional-only-keyword",
        "print('ESCAPED', getattr((), name='__class__'))",
        ["positional-only", "unexpected keyword"],
    ),
    ("try-star", "try:\n    pass\nexcept* Exception:\n    print('ESCAPED')", [COMPILE]),
    ("exec-call", "exec('print(\"ESCAPED\")')", [COMPILE]),
    ("eval-by-alias", "e = eval\nprint('ESCAPED', e('1'))", ["name 'eval' is not defined"]),
    (
        "compile-builtin",
        "c = compile('1', 'x', 'eval')\nprint('ESCAPED', c)",
        ["name 'compile' is not defined"],
    ),
    ("builtins-name", "print('ESCAPED', __builtins__)", [COMPILE]),
    ("globals-vars-locals", "print('ESCAPED', globals())", ["name 'globals' is not defined"]),
    ("vars-dir", "print('ESCAPED', vars(), dir(llm_query))", ["name 'vars' is not defined"]),
    (
        "three-arg-type",
        "X = type('X', (), {'__getattr__': 1})\nprint('ESCAPED', X)",
        ["three arguments is not allowed"],
    ),
    (
        "real-type-class-still-guarded",
        "T = type(type(0))\nX = T('X', (), {'f': lambda self: 1})\n"
        "print('ESCAPED', getattr(X().f, '__func__'))",
        [PRIVATE],
    ),
    (
        "init-subclass",
        "class A:\n    def __init_subclass__(cls):\n        print('ESCAPED')\nclass B(A):\n    pass",
        [COMPILE],
    ),
    ("metaclass", "class M(type):\n    pass\nclass A(metaclass=M):\n    pass\nprint('ESCAPED')", [COMPILE]),
    (
        "decorator-getattr",
        "def grab(f):\n    return getattr(f, '__glob' + 'als__')\n@grab\ndef g():\n    pass\n"
        "print('ESCAPED', g)",
        [PRIVATE],
    ),
    ("lambda-default", "f = lambda g=globals: g()\nprint('ESCAPED', f())", ["name 'globals' is not defined"]),
    ("lambda-default-builtins", "f = lambda b=__builtins__: b\nprint('ESCAPED', f())", [COMPILE]),
    (
        "match-class-pattern",
        "match ():\n    case object(__class__=c):\n        print('ESCAPED', c)",
        [COMPILE],
    ),
    ("help", "help(len)\nprint('ESCAPED')", ["name 'help' is not defined"]),
    ("breakpoint", "breakpoint()\nprint('ESCAPED')", [COMPILE]),
    ("input", "print('ESCAPED', input())", ["name 'input' is not defined"]),
    ("memoryview", "print('ESCAPED', memoryview(b'x'))", ["name 'memoryview' is not defined"]),
    (
        "super",
        "class A:\n    def f(self):\n        return super()\nprint('ESCAPED', A().f())",
        ["name 'super' is not defined"],
    ),
    (
        "module-attribute-write",
        "import json\njson.dumps = print\nprint('ESCAPED')",
        ["cannot modify a module object"],
    ),
    ("builtin-type-write", "setattr(str, 'upper', 1)\nprint('ESCAPED')", ["cannot modify a type object"]),
    (
        "module-attribute-delete",
        "import json\ndel json.dumps\nprint('ESCAPED')",
        ["cannot modify a module object"],
    ),
    (
        "augassign-module",
        "import json\njson.dumps += print\nprint('ESCAPED')",
        ["cannot modify a module object"],
    ),
    (
        "augassign-frame",
        "g = (x for x in [1])\ng.gi_frame += 1\nprint('ESCAPED')",
        ['"gi_frame" is a restricted name'],
    ),
    ("module-type-walk", "m = type(getattr(__name__, 'x', None))\nprint('ESCAPED')", [COMPILE]),
    (
        "real-module-from-function",
        "import json\nprint('ESCAPED', getattr(json.dumps, '__module__'))",
        [PRIVATE],
    ),
]


def test_there_are_at_least_forty_distinct_attacks():
    ids = [a[0] for a in ATTACKS]
    codes = [a[1] for a in ATTACKS]
    assert len(set(ids)) == len(ids) and len(set(codes)) == len(codes)
    assert len(ids) >= 40


@pytest.mark.parametrize("name, code, reasons", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_escape_attempt_is_stopped(shared_sandbox, name, code, reasons):
    result = shared_sandbox.execute(code, CountingHandler())
    assert "ESCAPED" not in result.stdout, f"{name} escaped: {result}"
    assert result.error is not None, f"{name}: no error: {result}"
    assert any(reason in result.error for reason in reasons), f"{name}: unexpected error {result.error!r}"
    assert result.final is None
    assert_no_leak(result)
    assert_still_works(shared_sandbox)


def test_file_outside_the_sandbox_was_not_written(shared_sandbox):
    shared_sandbox.execute(f"f = open({OUTSIDE_FILE!r}, 'w')", CountingHandler())
    assert not os.path.exists(OUTSIDE_FILE)


def test_secrets_never_reach_variables(shared_sandbox):
    shared_sandbox.execute(
        "grab = [context, str(memory), str(llm_query), DEFAULT_CHUNK_SIZE]", CountingHandler()
    )
    variables, dropped = shared_sandbox.get_variables()
    assert "grab" in variables
    assert SECRET not in repr(variables) and SECRET not in repr(dropped)


def test_child_environment_and_arguments_hold_no_secrets(factory):
    box = factory("c", {}, {})
    try:
        pid = box.pid
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read()
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read()
        # Started with env={}; bubblewrap sets only PWD (its private /tmp).
        assert environ == (b"PWD=/tmp\x00" if box.jailed else b"")
        assert SECRET.encode() not in cmdline and b"db-SECRET" not in cmdline
    finally:
        box.close()


def test_child_runs_in_a_private_directory_with_limits(factory):
    box = factory("c", {}, {})
    try:
        pid = box.pid
        cwd = os.readlink(f"/proc/{pid}/cwd")
        assert os.listdir(f"/proc/{pid}/cwd") == []
        if box.jailed:
            # bubblewrap's empty /tmp, a tmpfs of the REPL's own mount namespace: not the host's.
            assert cwd == "/tmp" and os.stat(f"/proc/{pid}/cwd").st_dev != os.stat("/tmp").st_dev
        else:
            # An empty private directory, deleted once the process started in it: nothing can be
            # created there, and nothing is left behind however the process ends.
            assert os.path.basename(cwd).startswith("rlm-sandbox-") and cwd.endswith(" (deleted)")
            assert stat.S_IMODE(os.stat(f"/proc/{pid}/cwd").st_mode) == 0o700
            assert not os.path.exists(cwd.removesuffix(" (deleted)"))
        with open(f"/proc/{pid}/limits") as handle:
            limits = {line[:26].strip(): line[26:].split() for line in handle.read().splitlines()[1:]}
        assert limits["Max core file size"][:2] == ["0", "0"]
        assert limits["Max processes"][:2] == ["0", "0"]
        assert limits["Max open files"][0] == "32"
        assert limits["Max address space"][0] == str(512 * 1024 * 1024)
        assert limits["Max cpu time"][0] in {"1", "2"}
        fds = os.listdir(f"/proc/{pid}/fd")
        assert len(fds) <= 5  # stdin/stdout/stderr on /dev/null and the two protocol pipes
        # A session of its own, led by the process the worker started (bubblewrap when jailed):
        # killed as a group.
        assert os.getsid(pid) == os.getpgid(pid) == box.group_leader
    finally:
        box.close()
