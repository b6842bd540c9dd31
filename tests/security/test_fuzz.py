"""Property tests: random snippets built from dangerous fragments, and random bytes on the pipe.

Whatever the snippet, `execute` returns a CellResult, the worker lives on, no secret appears, and
no forbidden object (a frame, a code object, a real `os`/`sys`/`builtins` module) is ever printed.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlm_worker.engine.types import CellResult
from rlm_worker.sandbox.protocol import (
    HEADER,
    ChannelClosed,
    ChannelTimeout,
    ProtocolError,
    WorkerChannel,
)
from tests.security.conftest import CountingHandler, assert_no_leak, assert_still_works

OBJECTS = [
    "()",
    "''",
    "[]",
    "{}",
    "0",
    "None",
    "llm_query",
    "memory",
    "FINAL",
    "FINAL_VAR",
    "SHOW_VARS",
    "context",
    "(x for x in [1])",
    "len",
    "print",
    "str",
    "type",
    "object",
    "Exception('e')",
    "(lambda: 0)",
    "type(())",
    "type(type(0))",
    "json",
    "re",
    "functools",
    "string",
    "random",
    "collections",
    "datetime",
    "answer",
    "range(3)",
    "iter([1])",
    "memory.append",
]
ATTRIBUTES = [
    "__class__",
    "__globals__",
    "__subclasses__",
    "__mro__",
    "__dict__",
    "__self__",
    "__func__",
    "__code__",
    "__builtins__",
    "__import__",
    "__traceback__",
    "__base__",
    "__bases__",
    "__closure__",
    "__call__",
    "__getattribute__",
    "__reduce_ex__",
    "__init__",
    "__module__",
    "gi_frame",
    "gi_code",
    "f_globals",
    "f_back",
    "tb_frame",
    "cr_frame",
    "co_code",
    "format",
    "format_map",
    "mro",
    "obj",
    "environ",
    "sys",
    "os",
    "_os",
    "decoder",
    "abc",
    "Formatter",
    "UserString",
    "singledispatch",
    "wraps",
    "append",
    "real",
    "upper",
]
BUILTINS = [
    "getattr",
    "hasattr",
    "setattr",
    "type",
    "vars",
    "dir",
    "open",
    "eval",
    "exec",
    "compile",
    "globals",
    "locals",
    "iter",
    "next",
    "repr",
    "str",
    "id",
    "callable",
    "help",
    "input",
    "memoryview",
    "super",
    "isinstance",
    "list",
    "sorted",
    "print",
]
MODULES = [
    "os",
    "sys",
    "subprocess",
    "ctypes",
    "importlib",
    "builtins",
    "posix",
    "pickle",
    "gc",
    "inspect",
    "operator",
    "io",
    "json",
    "re",
    "math",
    "collections",
    "collections.abc",
    "functools",
    "string",
    "datetime",
    "random",
    "statistics",
    "json.decoder",
    "textwrap",
    "itertools",
]
FORMATS = [
    "'{0.__class__}'",
    "'{0[0]}'",
    "'{0!r}'",
    "'{0:{1}}'",
    "'{0.gi_frame}'",
    "'{x}'",
    "'{0:>10}'",
    "'{0.__globals__[os]}'",
    "'%s'",
    "'{0:{0.__class__}}'",
]

obj = st.sampled_from(OBJECTS)
attr = st.sampled_from(ATTRIBUTES)
builtin = st.sampled_from(BUILTINS)
module = st.sampled_from(MODULES)
fmt = st.sampled_from(FORMATS)

LINE = st.one_of(
    st.builds("print(getattr({}, {!r}))".format, obj, attr),
    st.builds("print({}.{})".format, obj, attr),
    st.builds("print({}({}))".format, builtin, obj),
    st.builds("import {}\nprint({})".format, module, module),
    st.builds("from {} import {}".format, module, attr),
    st.builds("print({}.format({}, x={}))".format, fmt, obj, obj),
    st.builds("print({}.format_map({{'x': {}}}))".format, fmt, obj),
    st.builds("setattr({}, {!r}, 1)".format, obj, attr),
    st.builds("print(type({}).mro())".format, obj),
    st.builds(
        "try:\n    {}.{}\nexcept BaseException as e:\n    print(getattr(e, {!r}, None))".format,
        obj,
        attr,
        attr,
    ),
    st.builds("x = {}\nprint(x, {!r} in dir(x))".format, obj, attr),
    st.builds("print(hasattr({}, {!r}), {}({}))".format, obj, attr, builtin, obj),
)
SNIPPET = st.lists(LINE, min_size=1, max_size=4).map("\n".join)

FORBIDDEN_OUTPUT = (
    "<frame",
    "<code object",
    "<module 'os'",
    "<module 'sys'",
    "<module 'builtins'",
    "<module 'posix'",
    "<module 'subprocess'",
    "<module 'importlib'",
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(code=SNIPPET)
def test_random_dangerous_snippets(shared_sandbox, code):
    result = shared_sandbox.execute(code, CountingHandler())
    assert isinstance(result, CellResult)
    assert_no_leak(result)
    for marker in FORBIDDEN_OUTPUT:
        assert marker not in result.stdout, (code, result.stdout[:500])


def test_sandbox_still_works_after_fuzzing(shared_sandbox):
    assert_still_works(shared_sandbox)
    variables, _ = shared_sandbox.get_variables()
    assert_no_leak(CellResult(), variables)


@settings(max_examples=200, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=256),
        st.builds(lambda body: HEADER.pack(len(body)) + body, st.binary(max_size=200)),
        st.builds(
            lambda body: HEADER.pack(len(body)) + body,
            st.recursive(
                st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
                lambda inner: st.one_of(
                    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
                ),
                max_leaves=10,
            ).map(
                lambda value: (
                    __import__("json").dumps({"op": "call", "fn": "llm_query", "args": value}).encode()
                )
            ),
        ),
    )
)
def test_random_bytes_on_the_pipe_never_crash_the_worker(data):
    read_fd, write_fd = os.pipe()
    try:
        channel = WorkerChannel(read_fd, write_fd, max_frame_bytes=4096)
        os.write(write_fd, data)
        try:
            message = channel.receive(0.01)
        except (ProtocolError, ChannelTimeout, ChannelClosed):
            return
        assert message["op"] in {"ready", "call", "result", "variables"}
        if message["op"] == "call":
            assert isinstance(message["args"], dict)
    finally:
        os.close(read_fd)
        os.close(write_fd)
