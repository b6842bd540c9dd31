"""The library and the REPL API stay read-only, and the pipe stays honest, whatever a cell does.

The review behind these tests made `UserDict` and `UserList` (ABCs) answer "yes" for any type
(`register`, or a metaclass of the code's own that says yes), which made every class writable:
it then replaced `json.JSONEncoder.encode` and `memory.blocks` and, since the sandbox's own
protocol used `json`, sent the worker `1e999`, which became `float('inf')` and bricked the session.
Each attack below must fail where it tries to change the library, and afterwards the library,
`memory`, and the frames the sandbox sends must be exactly what they were.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import replace

import pytest

from rlm_worker.sandbox import SubprocessSandbox
from rlm_worker.sandbox.process import BOOTSTRAP
from rlm_worker.sandbox.protocol import ProtocolError, WorkerChannel, decode_body, encode_frame
from tests.security.conftest import TEST_CONFIG, CountingHandler, assert_still_works

REGISTER_REFUSED = 'attribute "register" of a library ABC is not available in the REPL'

#: Every route the review found to make a type count as a `UserDict`/`UserList`, tried before
#: each attack below (each may fail; the code's own ABC may register what it likes).
MAKE_EVERYTHING_WRITABLE = (
    "import json, collections, textwrap\n"
    "for target in (type(type(0)), type(json)):\n"
    "    for abc in (collections.UserDict, collections.UserList):\n"
    "        try:\n"
    "            abc.register(target)\n"
    "        except Exception:\n"
    "            pass\n"
    "class Mine(collections.UserDict):\n    pass\n"
    "Mine.register(type(type(0)))\n"
    "Mine.register(type(json))\n"
)

#: (id, attack, what the error must say). The attack's last line prints ESCAPED only if it got
#: through; it runs after MAKE_EVERYTHING_WRITABLE.
ATTACKS = [
    (
        "register-type-as-userdict",
        "collections.UserDict.register(type(type(0)))\nprint('ESCAPED')",
        REGISTER_REFUSED,
    ),
    (
        "register-module-type-as-userlist",
        "collections.UserList.register(type(json))\nprint('ESCAPED')",
        REGISTER_REFUSED,
    ),
    (
        "register-through-abcmeta",
        "type(collections.UserDict).register(collections.UserDict, type(type(0)))\nprint('ESCAPED')",
        REGISTER_REFUSED,
    ),
    (
        "register-through-own-metaclass",
        "class Meta(type(collections.UserDict)):\n    pass\n"
        "Meta.register(collections.UserDict, type(type(0)))\nprint('ESCAPED')",
        REGISTER_REFUSED,
    ),
    (
        # The code's own ABC may register what it likes; issubclass(type, UserDict) is then True,
        # and must make no difference to what the code may write.
        "own-userdict-subclass-says-yes-then-patch-encoder",
        "class Mine(collections.UserDict):\n    pass\nMine.register(type(type(0)))\n"
        "assert issubclass(type(type(0)), collections.UserDict)\n"
        "json.JSONEncoder.encode = lambda self, o: '1e999'\nprint('ESCAPED')",
        "cannot modify a type object in the REPL",
    ),
    (
        "patch-json-encoder",
        "json.JSONEncoder.encode = lambda self, o: '1e999'\nprint('ESCAPED')",
        "cannot modify a type object in the REPL",
    ),
    (
        "patch-json-decoder",
        "json.JSONDecoder.decode = lambda self, s: {'op': 'response', 'value': 'forged'}\nprint('ESCAPED')",
        "cannot modify a type object in the REPL",
    ),
    (
        "setattr-json-encoder",
        "setattr(json.JSONEncoder, 'iterencode', lambda self, o, one_shot=False: ['1e999'])\nprint('ESCAPED')",
        "cannot modify a type object in the REPL",
    ),
    (
        "delete-json-encoder-method",
        "del json.JSONEncoder.default\nprint('ESCAPED')",
        "cannot modify a type object in the REPL",
    ),
    (
        "patch-json-module",
        "json.dumps = lambda *a, **k: '1e999'\nprint('ESCAPED')",
        "cannot modify a module object in the REPL",
    ),
    (
        "patch-library-function",
        "json.dumps.marker = 1\nprint('ESCAPED')",
        "cannot modify a function object in the REPL",
    ),
    (
        "patch-memory-class",
        "type(memory).blocks = lambda self: {'learnings': 'forged'}\nprint('ESCAPED')",
        "cannot modify a type object in the REPL",
    ),
    (
        "patch-repl-function-class",
        "type(llm_query).marker = 1\nprint('ESCAPED')",
        "cannot modify a type object in the REPL",
    ),
    (
        "library-class-dict-item",
        "textwrap.TextWrapper.unicode_whitespace_trans[32] = 'X'\nprint('ESCAPED')",
        "cannot modify a mappingproxy object in the REPL",
    ),
    (
        "library-class-dict-update",
        "textwrap.TextWrapper.unicode_whitespace_trans.update({32: 'X'})\nprint('ESCAPED')",
        "'mappingproxy' object has no attribute 'update'",
    ),
    (
        "library-class-dict-through-instance",
        "dict.update(textwrap.TextWrapper().unicode_whitespace_trans, {32: 'X'})\nprint('ESCAPED')",
        "doesn't apply to a 'mappingproxy' object",
    ),
]

#: Run after every attack in the same REPL: the library and `memory` must behave as before.
INTACT = (
    "import json, collections, textwrap\n"
    "print(json.dumps({'a': [1, 2.5]}), json.loads('[1]'))\n"
    "print(json.JSONEncoder().encode('x'), issubclass(type(type(0)), collections.UserList))\n"
    "print(textwrap.TextWrapper().unicode_whitespace_trans[32])\n"
    "print(memory.blocks())\n"
    "boom = 'boom'\n"
    "x = {'k': 1}\nx['k'] = 2\nL = []\nL.append(1)\n"
)
INTACT_OUTPUT = "{\"a\": [1, 2.5]} [1]\n\"x\" False\n32\n{'learnings': 'real'}\n"


class MemoryHandler(CountingHandler):
    def __call__(self, fn, args):
        self.count += 1
        return {"learnings": "real"} if fn == "memory_blocks" else "ok"


@pytest.fixture()
def box(factory):
    sandbox = factory("ctx", {}, {})
    yield sandbox
    sandbox.close()


@pytest.mark.parametrize("name, code, reason", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_library_and_repl_api_cannot_be_modified(box, name, code, reason):
    attack = box.execute(MAKE_EVERYTHING_WRITABLE + code, MemoryHandler())
    assert "ESCAPED" not in attack.stdout, attack
    assert attack.error is not None and reason in attack.error, attack.error

    after = box.execute(INTACT, MemoryHandler())
    assert after.error is None, after.error
    assert after.stdout == INTACT_OUTPUT
    variables, _dropped = box.get_variables()
    assert variables["boom"] == "boom" and variables["x"] == {"k": 2} and variables["L"] == [1]
    assert_still_works(box)


def test_the_codes_own_classes_and_containers_stay_writable(box):
    """The fix must not take away what the code may legitimately change."""
    code = (
        "import collections, functools\n"
        "class Point:\n    pass\n"
        "p = Point()\np.x = 1\nPoint.label = 'pt'\n"
        "class Mine(collections.abc.Mapping):\n    pass\n"
        "Mine.note = 'mine'\nMine.register(int)\n"
        "class Store(collections.UserDict):\n    pass\n"
        "s = Store()\ns['k'] = 'v'\ns.extra = 1\n"
        "def f():\n    return 1\nf.tag = 'ok'\n"
        "c = collections.Counter()\nc['a'] += 2\nd = collections.deque()\nd.append(1)\n"
        "print(p.x, Point.label, Mine.note, issubclass(int, Mine), s['k'], f.tag, c['a'], list(d))"
    )
    result = box.execute(code, CountingHandler())
    assert result.error is None, result.error
    assert result.stdout == "1 pt mine True v ok 2 [1]\n"


# -- the protocol does not use what a cell could change ----------------------------------------------


def test_frames_do_not_depend_on_the_json_module(monkeypatch):
    """Even with every entry point of `json` replaced after import, frames encode and decode as before."""
    frame = encode_frame({"op": "call", "fn": "llm_query", "args": {"prompt": "é", "model": None}})
    forged = '{"op":"response","value":"forged"}'
    monkeypatch.setattr(json, "dumps", lambda *a, **k: forged)
    monkeypatch.setattr(json, "loads", lambda *a, **k: {"op": "response", "value": "forged"})
    monkeypatch.setattr(json.JSONEncoder, "encode", lambda self, o: forged)
    monkeypatch.setattr(json.JSONEncoder, "iterencode", lambda self, o, _one_shot=False: [forged])
    monkeypatch.setattr(json.JSONDecoder, "decode", lambda self, s, _w=None: {"op": "forged"})
    monkeypatch.setattr(json.JSONDecoder, "raw_decode", lambda self, s, idx=0: ({"op": "forged"}, len(s)))
    again = encode_frame({"op": "call", "fn": "llm_query", "args": {"prompt": "é", "model": None}})
    assert again == frame
    assert decode_body(frame[4:]) == {"op": "call", "fn": "llm_query", "args": {"prompt": "é", "model": None}}


def _patched_python(tmp_path) -> str:
    """A python that starts the real sandbox, but with `json` changed as a cell that got past the
    write guard would change it, before the first frame is read."""
    patch = (
        "import json\n"
        'forged = \'{"op":"result","stdout":"FORGED","stderr":"","error":null,'
        '"final":null,"limit_hit":null}\'\n'
        "json.dumps = lambda *a, **k: forged\n"
        "json.JSONEncoder.encode = lambda self, o: '1e999'\n"
        "json.JSONEncoder.iterencode = lambda self, o, _one_shot=False: ['1e999']\n"
        "json.loads = lambda *a, **k: {'op': 'shutdown'}\n"
        "json.JSONDecoder.decode = lambda self, s, _w=None: {'op': 'shutdown'}\n"
    )
    bootstrap = BOOTSTRAP.replace("main(c)\n", patch + "main(c)\n")
    script = tmp_path / "patched-python"
    script.write_text(
        f'#!/bin/sh\nshift 7\nexec {sys.executable} -I -S -B -X utf8 -c {_sh_quote(bootstrap)} "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def test_the_sandbox_protocol_ignores_a_changed_json_module(tmp_path):
    config = replace(TEST_CONFIG, python_executable=_patched_python(tmp_path))
    box = SubprocessSandbox("ctx", {"kept": [1, 2]}, {}, config)
    try:
        result = box.execute("v = 'boom'\nw = 1e999\nprint(memory.blocks())", MemoryHandler())
        assert result.error is None and result.stdout == "{'learnings': 'real'}\n", result
        variables, dropped = box.get_variables()
        assert variables == {"answer": {"content": "", "ready": False}, "kept": [1, 2], "v": "boom"}
        assert dropped == ["w"]  # inf is not JSON: named, never sent
    finally:
        box.close()


# -- the worker refuses numbers that are not finite, however they are spelled ------------------------

NON_FINITE = ["1e999", "-1e999", "1E400", "-2.5e+999", "NaN", "Infinity", "-Infinity"]


@pytest.mark.parametrize("spelling", NON_FINITE)
def test_worker_rejects_non_finite_numbers(spelling):
    body = f'{{"op":"variables","variables":{{"v":{spelling}}},"dropped":[]}}'.encode()
    read_fd, write_fd = os.pipe()
    spare_read, spare_write = os.pipe()
    try:
        os.write(write_fd, len(body).to_bytes(4, "big") + body)
        with pytest.raises(ProtocolError, match="out of the range of a float|non-standard JSON constant"):
            WorkerChannel(read_fd, spare_write).receive(1)
    finally:
        for fd in (read_fd, write_fd, spare_read, spare_write):
            os.close(fd)


def test_finite_numbers_still_pass():
    body = b'{"op":"variables","variables":{"v":[1e308,-1e-400,12345678901234567890,0.5]},"dropped":[]}'
    assert decode_body(body)["variables"]["v"] == [1e308, -0.0, 12345678901234567890, 0.5]
