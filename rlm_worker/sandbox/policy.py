"""What model-written code may touch: RestrictedPython compilation plus the guards it calls.

Why a module of its own: this is the security boundary inside the sandbox process. RestrictedPython
rewrites every attribute read, item read, write, iteration and augmented assignment into a call to
one of the guard functions below; together with the builtins and the module views they decide what
the code can reach. Everything else about the sandbox (the process, its limits, the pipe) is defence
in depth around this file.

Rules, in short:
- no attribute whose name starts with "_", and none of the frame/code/traceback/generator
  internals (`gi_frame`, `f_globals`, `tb_frame`, ...), by any route (`getattr`, `hasattr`, f-strings);
- `str.format` / `format_map` only with plain field names (no `.` or `[` that could walk objects);
- imports only from an allow-list, and what an import returns is a *view* of the module holding
  only its public, harmless attributes (so `from datetime import sys` finds nothing); a real module
  object never reaches the code, not even as the attribute of something else;
- writes only to containers (dict, list, set, ...), the `memory` stub, and objects the code created
  itself (instances of its own classes, its own functions);
- `type()` with one argument only; no `open`, `eval`, `exec`, `compile`, `globals`, `vars`,
  `locals`, `dir`, `input`, `help`, `breakpoint`, `memoryview`, `super`.
"""

from __future__ import annotations

import abc
import ast
import builtins
import collections
import functools
import importlib
import operator
import string
import types
import weakref
from _string import formatter_parser  # the parser str.format itself uses
from typing import Any

from RestrictedPython import compile_restricted_exec
from RestrictedPython.Guards import (
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safe_builtins,
)
from RestrictedPython.Limits import limited_builtins
from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer
from RestrictedPython.Utilities import utility_builtins

CELL_FILENAME = "<cell>"

#: Modules the code may import. Submodules not listed here are not reachable.
ALLOWED_MODULES = frozenset(
    {
        "re",
        "json",
        "math",
        "collections",
        "collections.abc",
        "itertools",
        "functools",
        "statistics",
        "string",
        "textwrap",
        "datetime",
        "random",
        "heapq",
        "bisect",
    }
)

#: Public attributes left out of a module's view (they would evaluate attribute paths or are
#: unsafe wrappers around `str.format`).
_HIDDEN_MODULE_ATTRIBUTES = {
    "string": {"Formatter"},
    "collections": {"UserString"},
    # register() evaluates string annotations with typing.get_type_hints: eval without guards.
    "functools": {"singledispatch", "singledispatchmethod"},
}

#: Attribute names refused on every object, whatever its type.
DENIED_ATTRIBUTES = frozenset(
    INSPECT_ATTRIBUTES
    | {
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "cr_frame",
        "cr_code",
        "cr_await",
        "cr_origin",
        "ag_frame",
        "ag_code",
        "ag_await",
        "f_globals",
        "f_locals",
        "f_back",
        "f_builtins",
        "f_code",
        "f_trace",
        "f_generator",
        "tb_frame",
        "tb_next",
        "co_code",
    }
)

_TRACEBACK_ATTRIBUTES = frozenset({"tb_lineno", "tb_lasti"})
_OPAQUE_TYPES = (types.FrameType, types.CodeType)
_FORMATTER_METHODS = frozenset({"format", "vformat", "get_field", "get_value", "format_field"})


class PolicyError(AttributeError):
    """An attribute the REPL does not give access to."""


def _deny(name: str, why: str = "is not available in the REPL") -> PolicyError:
    return PolicyError(f'attribute "{name}" {why}')


# -- str.format without attribute or item walks ---------------------------------------------------

_checked_templates: dict[str, bool] = {}


def check_format_string(template: str, depth: int = 0) -> None:
    """Refuse format fields that walk attributes or items (`{0.__class__}`, `{0[x]}`)."""
    if depth > 2:
        raise ValueError("Max string recursion exceeded")
    for _literal, field, spec, _conversion in formatter_parser(template):
        if field is not None and ("." in field or "[" in field):
            raise ValueError(
                f"format field {{{field}}} is not allowed in the REPL: fields may not use '.' or '['; "
                "pass the value itself as an argument"
            )
        if spec and "{" in spec:
            check_format_string(spec, depth + 1)


def _checked(template: Any) -> str:
    if not isinstance(template, str):
        raise TypeError("format() needs a str")
    plain = str.__str__(template)
    if plain not in _checked_templates:
        check_format_string(plain)
        if len(plain) < 10_000 and len(_checked_templates) < 512:
            _checked_templates[plain] = True
    return plain


def safe_format(template: Any, /, *args: Any, **kwargs: Any) -> str:
    """`str.format`, with field names limited to positions and keywords."""
    return str.format(_checked(template), *args, **kwargs)


def safe_format_map(template: Any, mapping: Any, /) -> str:
    """`str.format_map`, with field names limited to positions and keywords."""
    return str.format_map(_checked(template), mapping)


# -- module views -------------------------------------------------------------------------------

_views: dict[str, types.ModuleType] = {}
_view_ids: set[int] = set()


def _user_function(obj: Any) -> bool:
    return type(obj) is types.FunctionType and obj.__code__.co_filename == CELL_FILENAME


def safe_update_wrapper(wrapper: Any, wrapped: Any, /) -> Any:
    """`functools.update_wrapper` for the code's own functions, with the fixed attribute list.

    The real one takes the attribute names to copy as arguments, which would read and write any
    dunder (`__globals__`, `__builtins__`) of any object.
    """
    if not _user_function(wrapper):
        raise TypeError("functools.update_wrapper/wraps: the wrapper must be a function defined in the REPL")
    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        value = getattr(wrapped, name, None)
        if isinstance(value, str):
            setattr(wrapper, name, str.__str__(value))
    wrapper.__wrapped__ = wrapped
    return wrapper


def safe_wraps(wrapped: Any, /) -> Any:
    """`functools.wraps` built on `safe_update_wrapper`."""
    return _Wraps(wrapped)


class _Wraps:
    """The decorator `safe_wraps` returns; holds nothing reachable but `wrapped`'s public face."""

    __slots__ = ("_wrapped",)

    def __init__(self, wrapped: Any) -> None:
        self._wrapped = wrapped

    def __call__(self, wrapper: Any) -> Any:
        return safe_update_wrapper(wrapper, self._wrapped)


_SUBSTITUTES = {
    ("functools", "update_wrapper"): safe_update_wrapper,
    ("functools", "wraps"): safe_wraps,
}


def module_view(name: str) -> types.ModuleType:
    """A stand-in module holding the public attributes of allowed module `name`, minus hidden ones.

    Attributes that are modules become views of allowed modules or are left out.
    """
    view = _views.get(name)
    if view is not None:
        return view
    if name not in ALLOWED_MODULES:
        raise ImportError(f"module {name!r} is not available in the REPL")
    real = importlib.import_module(name)
    if name == "collections":
        importlib.import_module("collections.abc")
    view = types.ModuleType(name, real.__doc__ if isinstance(real.__doc__, str) else None)
    _views[name] = view
    _view_ids.add(id(view))
    hidden = _HIDDEN_MODULE_ATTRIBUTES.get(name, set())
    for attr in dir(real):
        if attr.startswith("_") or attr in hidden:
            continue
        value = getattr(real, attr)
        if isinstance(value, types.ModuleType):
            if value.__name__ not in ALLOWED_MODULES:
                continue
            value = module_view(value.__name__)
        value = _SUBSTITUTES.get((name, attr), value)
        view.__dict__[attr] = value
    return view


def _filter_module(value: Any, name: str) -> Any:
    """Never hand out a real module: allowed ones become their view, others are refused."""
    if id(value) in _view_ids:
        return value
    module_name = getattr(value, "__name__", None)
    if type(module_name) is str and module_name in ALLOWED_MODULES:
        return module_view(module_name)
    raise _deny(name, "refers to a module that is not available in the REPL")


def guarded_import(
    name: Any, globals: Any = None, locals: Any = None, fromlist: Any = (), level: Any = 0, /
) -> types.ModuleType:
    """`__import__` limited to ALLOWED_MODULES; returns module views, never real modules."""
    if level != 0:
        raise ImportError("relative imports are not allowed in the REPL")
    if type(name) is not str or name not in ALLOWED_MODULES:
        allowed = ", ".join(sorted(m for m in ALLOWED_MODULES if "." not in m))
        raise ImportError(f"import of {name!r} is not allowed in the REPL; allowed modules: {allowed}")
    if not fromlist:
        return module_view(name.partition(".")[0])
    view = module_view(name)
    for item in fromlist:
        if type(item) is not str or item == "*" or item.startswith("_"):
            raise ImportError(f"cannot import {item!r} from {name!r} in the REPL")
        if item not in view.__dict__:
            sub = f"{name}.{item}"
            if sub in ALLOWED_MODULES:
                view.__dict__[item] = module_view(sub)
            else:
                raise ImportError(f"cannot import name {item!r} from {name!r} (not available in the REPL)")
    return view


# -- classes, judged by their MRO -------------------------------------------------------------

class _OwnedClasses:
    """The classes the code made with a `class` statement, judged by identity alone.

    A `WeakSet` (or any set or dict keyed by the class) asks the class's metaclass for `__hash__`
    and `__eq__`, and the code writes metaclasses: one whose `__eq__` says yes and whose `__hash__`
    copies `hash(json.JSONEncoder)` made the library's classes count as the code's own. Here the key
    is `id(cls)` (an int, hashed by `int`), and a hit counts only if the weak reference still points
    at that very object (`is`); the reference's callback forgets the id when the class dies, so a
    later class reusing the address is not taken for it.
    """

    __slots__ = ("_refs",)

    def __init__(self) -> None:
        self._refs: dict[int, weakref.ref[type]] = {}

    def add(self, cls: type) -> None:
        key = id(cls)
        refs = self._refs

        def forget(ref: weakref.ref[type], key: int = key) -> None:
            if refs.get(key) is ref:
                del refs[key]

        refs[key] = weakref.ref(cls, forget)

    def owns(self, obj: Any) -> bool:
        ref = self._refs.get(id(obj))
        return ref is not None and ref() is obj

    def __len__(self) -> int:
        return len(self._refs)


_user_classes = _OwnedClasses()


def _is_any(obj: Any, candidates: Any) -> bool:
    """`obj in candidates`, by identity: `in` would ask `obj`'s (code-written) `__eq__`."""
    return any(obj is candidate for candidate in candidates)


#: Containers the code may change, matched against the concrete classes of an object's type
#: (its MRO), never with `issubclass`: `UserDict` and `UserList` are ABCs, and an ABC answers
#: `issubclass` as the code tells it to (`UserDict.register(type)`, or a metaclass whose
#: `__subclasscheck__` says yes), while a class's MRO is fixed when the class is made.
_WRITABLE_BASES = (dict, list, set, bytearray, collections.deque, collections.UserDict, collections.UserList)
#: A type's MRO and namespace, read from the type slots (not looked up through its metaclass).
_type_mro = type.__dict__["__mro__"].__get__
_type_dict = type.__dict__["__dict__"].__get__


def _based_on_writable(kind: type) -> bool:
    return any(_is_any(klass, _WRITABLE_BASES) for klass in _type_mro(kind))


def classes_of(obj: Any) -> tuple[type, ...]:
    """The classes `obj` is an instance of: its type's MRO (no ABC hooks, no virtual subclasses)."""
    return _type_mro(type(obj))


def _is_class(obj: Any) -> bool:
    return _is_any(type, classes_of(obj))


def user_class(name: str, bases: tuple[Any, ...], namespace: dict[str, Any], **kwargs: Any) -> type:
    """`__metaclass__` for `class` statements: builds the class and remembers the code owns it."""
    cls = type(name, bases, namespace, **kwargs)
    _user_classes.add(cls)
    return cls


# -- attribute and item access ------------------------------------------------------------------


def guarded_getattr(obj: Any, name: Any, /) -> Any:
    """`_getattr_`: every `obj.name` read in the model's code goes through here."""
    if type(name) is not str:
        raise TypeError("attribute name must be a str")
    if name.startswith("_"):
        raise _deny(name, 'is not allowed in the REPL (names starting with "_" are private)')
    if name in DENIED_ATTRIBUTES:
        raise _deny(name)
    kind = type(obj)
    if kind is types.ModuleType or isinstance(obj, types.ModuleType):
        if id(obj) not in _view_ids:
            raise _deny(name, "of a module that is not available in the REPL")
    elif isinstance(obj, _OPAQUE_TYPES):
        raise _deny(name)
    elif isinstance(obj, types.TracebackType) and name not in _TRACEBACK_ATTRIBUTES:
        raise _deny(name)
    elif name == "obj" and isinstance(obj, AttributeError):
        raise _deny(name)
    if name == "format" or name == "format_map":
        if _is_any(str, classes_of(obj)):
            plain = str.__str__(obj)
            return functools.partial(safe_format if name == "format" else safe_format_map, plain)
        if _class_based_on(obj, str):
            return safe_format if name == "format" else safe_format_map
        if _instance_or_class_based_on(obj, collections.UserString):
            raise _deny(name, "of UserString is not available in the REPL; use str(x).format(...)")
    if name in _FORMATTER_METHODS and _instance_or_class_based_on(obj, string.Formatter):
        raise _deny(name)
    if name == "register" and _registers_into_library_abc(obj):
        raise _deny(name, "of a library ABC is not available in the REPL (it would change the library)")
    value = getattr(obj, name)
    if isinstance(value, types.ModuleType):
        return _filter_module(value, name)
    if isinstance(value, (types.FrameType, types.CodeType, types.TracebackType)):
        raise _deny(name)
    if _based_on_writable(type(value)) and _library_container(obj, name, value):
        return _read_only(value)
    return value


def _class_based_on(obj: Any, base: type) -> bool:
    return _is_class(obj) and _is_any(base, _type_mro(obj))


def _instance_or_class_based_on(obj: Any, base: type) -> bool:
    return _is_any(base, classes_of(obj)) or _class_based_on(obj, base)


def _registers_into_library_abc(obj: Any) -> bool:
    """`register` of an ABC the code did not make, or of `ABCMeta` itself (or a metaclass built on
    it, whose `register(abc, cls)` takes any ABC): it would change what the library's
    `isinstance`/`issubclass` answer."""
    if not _is_class(obj):
        return False
    if _is_any(abc.ABCMeta, _type_mro(obj)):
        return True
    return _is_any(abc.ABCMeta, classes_of(obj)) and not _user_classes.owns(obj)


def _library_container(obj: Any, name: str, value: Any) -> bool:
    """Whether the mutable container `value` is held by a module or by a class of the library
    (`textwrap.TextWrapper.unicode_whitespace_trans`): changing it would change the library."""
    if id(obj) in _view_ids:
        return True
    owners = _type_mro(obj) if _is_class(obj) else classes_of(obj)
    return any(_type_dict(klass).get(name) is value and not _user_classes.owns(klass) for klass in owners)


def _read_only(value: Any) -> Any:
    """A copy (or, for a dict, a read-only view) the code can read but not change."""
    bases = classes_of(value)
    if _is_any(dict, bases) or _is_any(collections.UserDict, bases):
        return types.MappingProxyType(value)
    if _is_any(set, bases):
        return frozenset(value)
    if _is_any(bytearray, bases):
        return bytes(value)
    return tuple(value)


_MISSING = object()


def safe_getattr(obj: Any, name: Any, default: Any = _MISSING, /) -> Any:
    """The `getattr` builtin, through `guarded_getattr`."""
    try:
        return guarded_getattr(obj, name)
    except AttributeError:
        if default is _MISSING:
            raise
        return default


def safe_hasattr(obj: Any, name: Any, /) -> bool:
    """The `hasattr` builtin, through `guarded_getattr` (private names read as absent)."""
    try:
        guarded_getattr(obj, name)
    except AttributeError:
        return False
    return True


def guarded_getitem(obj: Any, key: Any, /) -> Any:
    """`_getitem_`: `obj[key]`, refusing to hand out a real module object."""
    value = obj[key]
    if isinstance(value, types.ModuleType) and id(value) not in _view_ids:
        raise TypeError("that item is a module that is not available in the REPL")
    return value


# -- writes ----------------------------------------------------------------------------------------

_extra_writable: list[type] = []  # compared by identity, like every class check here


def allow_writes_to(kind: type) -> None:
    """Let the code write items/attributes of instances of `kind` (the REPL's `memory` object)."""
    if not _is_any(kind, _extra_writable):
        _extra_writable.append(kind)


def _writable(obj: Any) -> bool:
    """Containers, the `memory` stub, and what the code made itself (its classes, their instances,
    its functions). Every class, module and function of the library and of the REPL API is not."""
    kind = type(obj)
    if _is_any(kind, _extra_writable) or _user_function(obj):
        return True
    if _is_class(obj) and _user_classes.owns(obj):
        return True
    return any(_is_any(klass, _WRITABLE_BASES) or _user_classes.owns(klass) for klass in _type_mro(kind))


def guarded_write(obj: Any, /) -> Any:
    """`_write_`: the object an assignment or `del` of an attribute or item may change."""
    if _writable(obj):
        return obj
    raise TypeError(f"cannot modify a {type(obj).__name__} object in the REPL")


def _public_name(name: Any) -> str:
    if type(name) is not str:
        raise TypeError("attribute name must be a str")
    if name.startswith("_") or name in DENIED_ATTRIBUTES:
        raise _deny(name, "is not allowed in the REPL")
    return name


def safe_setattr(obj: Any, name: Any, value: Any, /) -> None:
    """The `setattr` builtin: public names of writable objects only."""
    setattr(guarded_write(obj), _public_name(name), value)


def safe_delattr(obj: Any, name: Any, /) -> None:
    """The `delattr` builtin: public names of writable objects only."""
    delattr(guarded_write(obj), _public_name(name))


_INPLACE = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "^=": operator.ixor,
    "|=": operator.ior,
    "@=": operator.imatmul,
}


def inplace_var(op: str, target: Any, value: Any, /) -> Any:
    """`_inplacevar_`: `x += y` and friends on names."""
    return _INPLACE[op](target, value)


def apply_call(func: Any, /, *args: Any, **kwargs: Any) -> Any:
    """`_apply_`: calls written with `*args` / `**kwargs`."""
    return func(*args, **kwargs)


def safe_type(obj: Any, /, *rest: Any) -> type:
    """The `type` builtin, one argument only (no class creation that skips the class statement)."""
    if rest:
        raise TypeError("type() with three arguments is not allowed in the REPL; use a class statement")
    return type(obj)


# -- print ---------------------------------------------------------------------------------------


class OutputBuffer:
    """Where `print` writes during a cell: a list of strings capped at `limit` characters."""

    __slots__ = ("parts", "size", "limit", "truncated")

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit
        self.truncated = False

    def write(self, text: str) -> None:
        if self.truncated:
            return
        room = self.limit - self.size
        if len(text) > room:
            text = text[:room]
            self.truncated = True
        self.parts.append(text)
        self.size += len(text)

    def text(self) -> str:
        return "".join(self.parts)


class _Output:
    """Module-level holder of the current cell's buffer (swapped by the child at each cell)."""

    buffer = OutputBuffer(1_000_000)


def set_output_buffer(buffer: OutputBuffer) -> None:
    _Output.buffer = buffer


class PrintCollector:
    """What `_print_` returns: `print(...)` becomes `_print._call_print(...)`; `printed` calls it."""

    __slots__ = ()

    def _call_print(
        self, *objects: Any, sep: Any = " ", end: Any = "\n", file: Any = None, flush: Any = False
    ) -> None:
        if file is not None:
            raise TypeError("print(file=...) is not supported in the REPL; print() writes to the cell output")
        if sep is None:
            sep = " "
        if end is None:
            end = "\n"
        if type(sep) is not str or type(end) is not str:
            raise TypeError("sep and end must be str or None")
        if _Output.buffer.truncated:
            return
        _Output.buffer.write(sep.join([str(o) for o in objects]) + end)

    def __call__(self) -> str:
        return _Output.buffer.text()


_PRINT_COLLECTOR = PrintCollector()


def emit(text: str) -> None:
    """Write a line to the current cell's output, as `print` would (for REPL functions)."""
    _PRINT_COLLECTOR._call_print(text)


def print_factory(_getattr: Any = None) -> PrintCollector:
    """`_print_`: RestrictedPython calls it at the top of the cell and of each function."""
    return _PRINT_COLLECTOR


# -- builtins and globals --------------------------------------------------------------------------

_HARMLESS_BUILTINS = (
    "abs all any ascii bin bool bytes bytearray callable chr classmethod complex dict divmod enumerate "
    "filter float format frozenset hash hex id int isinstance issubclass iter len list map max min next "
    "object oct ord pow property range repr reversed round set slice sorted staticmethod str sum tuple zip "
    "NotImplemented Ellipsis None True False"
).split()

_EXTRA_EXCEPTIONS = (
    "RecursionError TimeoutError FileNotFoundError PermissionError ModuleNotFoundError "
    "StopAsyncIteration ConnectionError IsADirectoryError NotADirectoryError ProcessLookupError "
    "ChildProcessError BlockingIOError InterruptedError"
).split()

_REMOVED = {"_getattr_", "setattr", "delattr", "whrandom", "string", "math", "random", "DateTime"}


def build_builtins() -> dict[str, Any]:
    """RestrictedPython's safe, limited and utility builtins, plus common harmless ones, guarded."""
    table: dict[str, Any] = {}
    table.update(safe_builtins)
    table.update(limited_builtins)
    table.update(utility_builtins)
    for name in _REMOVED:
        table.pop(name, None)
    for name in _HARMLESS_BUILTINS + _EXTRA_EXCEPTIONS:
        table[name] = getattr(builtins, name)
    table.update(
        {
            "getattr": safe_getattr,
            "hasattr": safe_hasattr,
            "setattr": safe_setattr,
            "delattr": safe_delattr,
            "type": safe_type,
            "__import__": guarded_import,
        }
    )
    return table


def restricted_globals() -> dict[str, Any]:
    """A fresh REPL namespace holding the builtins and the guard functions RestrictedPython calls."""
    return {
        "__builtins__": build_builtins(),
        "__name__": "__repl__",
        "__metaclass__": user_class,
        "_getattr_": guarded_getattr,
        "_getitem_": guarded_getitem,
        "_getiter_": iter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": guarded_write,
        "_inplacevar_": inplace_var,
        "_print_": print_factory,
        "_apply_": apply_call,
    }


class CellTransformer(RestrictingNodeTransformer):
    """RestrictedPython's policy, plus `d[k] += 1` and `self.n += 1`, which models write a lot.

    RestrictedPython refuses augmented assignment to items and attributes. Here the target's object
    goes through `_write_` (so only containers and the code's own objects qualify) and the
    attribute name gets the same compile-time checks as any attribute; the read half of the
    operation then happens on an object the code may already modify.
    """

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        target = node.target
        if isinstance(target, ast.Attribute) and target.attr in DENIED_ATTRIBUTES:
            self.error(node, f'"{target.attr}" is a restricted name.')
            return node
        if isinstance(target, (ast.Subscript, ast.Attribute)):
            return self.node_contents_visit(node)  # the target becomes _write_(obj)[key] / .attr
        return super().visit_AugAssign(node)


def compile_cell(source: str) -> tuple[types.CodeType | None, str | None]:
    """(code, None) or (None, error text) for one cell of model-written code."""
    try:
        result = compile_restricted_exec(source, filename=CELL_FILENAME, policy=CellTransformer)
    except (RecursionError, MemoryError):
        return None, "SyntaxError: the cell is too deeply nested to compile"
    except Exception as exc:  # ValueError for NUL bytes and the like
        return None, f"SyntaxError: {exc}"
    if result.errors or result.code is None:
        lines = "\n".join(f"  {e}" for e in result.errors) or "  (no details)"
        return None, f"SyntaxError: the cell could not be compiled:\n{lines}"
    return result.code, None
