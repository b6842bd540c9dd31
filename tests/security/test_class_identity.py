"""Which classes the code made is judged by identity, never by a `__eq__`/`__hash__` the code wrote.

The red-team pass of issue 30 kept the code's classes in a `WeakSet`: a membership test hashes the
class and compares it with `==`, and both go to the class's metaclass, which the code can write
with the real `type` (`type(type(0))`). A metaclass whose `__eq__` always says yes and whose
`__hash__` copies another class's hash made that class "the code's own": the library's
`json.JSONEncoder` (then writable), `type` (every class writable), `collections.abc.Mapping`
(registrable, after which a `FINAL` of a dict restarted the REPL and lost the run's variables).
Each variant below must fail where it tries to change the library, and the same REPL must go on
with its variables and a correct `FINAL` of a dict.
"""

from __future__ import annotations

import pytest

from tests.security.conftest import CountingHandler, assert_still_works

#: A class whose metaclass says it equals anything and hashes as `target` says (a placeholder).
LOOKALIKE = (
    "import json, collections\n"
    "T = type(type(0))\n"
    "def meq(a, b):\n    return True\n"
    "def mh(a):\n    return a.h\n"
    "M = T('M', (T,), {'__eq__': meq, '__hash__': mh})\n"
    "B = M('B', (), {'h': 0})\n"
    "class U(B):\n    h = hash({target})\n"
)

CANNOT_MODIFY_TYPE = "cannot modify a type object in the REPL"
REGISTER_REFUSED = 'attribute "register" of a library ABC is not available in the REPL'

# (id, the class the lookalike copies the hash of, the attack, what the error must say)
ATTACKS = [
    (
        "json-encoder-default",  # the exploit, word for word after the lookalike
        "json.JSONEncoder",
        "def d(self, o):\n    return 'HIJACKED'\n"
        "json.JSONEncoder.default = d\n"
        "FINAL(json.dumps(object()))",
        CANNOT_MODIFY_TYPE,
    ),
    (
        "hash-of-type-makes-every-class-writable",
        "T",
        "def d(self, o):\n    return 'HIJACKED'\n"
        "json.JSONDecoder.decode = d\nprint('ESCAPED')",
        CANNOT_MODIFY_TYPE,
    ),
    (
        "hash-of-type-then-setattr",
        "T",
        "setattr(collections.OrderedDict, 'popitem', lambda self, last=True: 'HIJACKED')\nprint('ESCAPED')",
        CANNOT_MODIFY_TYPE,
    ),
    (
        "mapping-register",
        "collections.abc.Mapping",
        "collections.abc.Mapping.register(U)\nprint('ESCAPED')",
        REGISTER_REFUSED,
    ),
    (
        "mapping-register-lookalike-of-dict",
        "collections.abc.Mapping",
        "collections.abc.Mapping.register(type(0))\nprint('ESCAPED')",
        REGISTER_REFUSED,
    ),
    (
        "lookalike-of-a-writable-base",  # `in` a tuple/set of bases would ask U's __eq__
        "dict",
        "json.JSONEncoder.item_separator = 'HIJACKED'\nprint('ESCAPED')",
        CANNOT_MODIFY_TYPE,
    ),
]


@pytest.fixture()
def box(factory):
    sandbox = factory("ctx", {"kept": [1, 2]}, {})
    yield sandbox
    sandbox.close()


@pytest.mark.parametrize("name, target, attack, reason", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_a_lookalike_class_gives_no_write_access(box, name, target, attack, reason):
    assert box.execute("before = 'still here'", CountingHandler()).error is None
    result = box.execute(LOOKALIKE.replace("{target}", target) + attack, CountingHandler())
    assert "ESCAPED" not in result.stdout and result.final is None, result
    assert result.error is not None and reason in result.error, result.error

    # The library is unchanged, and a FINAL of a dict answers without restarting the REPL.
    after = box.execute(
        "import json, collections\n"
        "assert json.dumps({'a': 1}) == '{\"a\": 1}'\n"
        "assert not isinstance(0, collections.abc.Mapping)\n"
        "FINAL({'answer': before, 'kept': kept})",
        CountingHandler(),
    )
    assert after.error is None, after.error
    assert after.final == '{"answer": "still here", "kept": [1, 2]}'
    assert "restarted" not in after.stderr
    variables, _dropped = box.get_variables()
    assert variables["before"] == "still here"
    assert_still_works(box)


def test_the_lookalike_itself_stays_the_codes_own(box):
    """Identity does not take away what the code made: its metaclass-built classes stay writable."""
    result = box.execute(
        LOOKALIKE.replace("{target}", "json.JSONEncoder") + "U.note = 'mine'\nu = U()\nu.x = 1\nprint(U.note, u.x)",
        CountingHandler(),
    )
    assert result.error is None, result.error
    assert result.stdout == "mine 1\n"


def test_owned_classes_are_forgotten_when_they_die():
    """The registry holds no class alive, and a dead class's id is not taken for a new object."""
    import gc

    from rlm_worker.sandbox import policy

    registry = policy._OwnedClasses()
    cls = type("Temporary", (), {})
    registry.add(cls)
    assert registry.owns(cls) and len(registry) == 1
    del cls
    gc.collect()
    assert len(registry) == 0
