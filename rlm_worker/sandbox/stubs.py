"""The names the REPL gives model code: `llm_query`, `rlm_query`, `memory`, `FINAL`, ...

Why separate: these are the only objects in the REPL that lead back to the pipe. Each one is an
instance of a slot-less class (`__slots__ = ()`) exposing no public attribute; its methods call
`call()` below, which reaches the channel through the module-level `RUNTIME`. The code can reach
neither: every route goes through a name starting with "_" (`__globals__`, `__self__`,
`__call__`), which the policy refuses. Arguments are checked here so a wrong call fails with a
clear TypeError in the model's own code; anything the worker rejects comes back as RuntimeError.
"""

from __future__ import annotations

import json
import os
from typing import Any

from rlm_worker.sandbox.policy import allow_writes_to, emit
from rlm_worker.sandbox.protocol import ProtocolError, encode_frame

EXIT_CPU = 87
EXIT_MEMORY = 88
EXIT_PROTOCOL = 89


class FinalSignal(BaseException):
    """Raised by FINAL/FINAL_VAR to end the cell; `except Exception` in the model's code misses it."""


class CellCpuExceeded(BaseException):
    """Raised (from the SIGXCPU handler) when the cell used up its CPU seconds."""


class Runtime:
    """The sandbox process's state for the current cell; never reachable from model code."""

    def __init__(self) -> None:
        self.channel: Any = None
        self.namespace: dict[str, Any] = {}
        self.reserved: frozenset[str] = frozenset()
        #: The names the REPL owns and the objects they started as: put back after every cell.
        self.pinned: dict[str, Any] = {}
        self.final: str | None = None
        self.in_user_code = False
        self.cpu_signals = 0
        self.cpu_pending = False

    def raise_pending(self) -> None:
        if self.cpu_pending and self.in_user_code:
            self.cpu_pending = False
            raise CellCpuExceeded()


RUNTIME = Runtime()


def call(fn: str, args: dict[str, Any]) -> Any:
    """Send one `call` frame to the worker and block for its answer."""
    runtime = RUNTIME
    problem = None
    try:
        data = encode_frame({"op": "call", "fn": fn, "args": args}, runtime.channel.max_frame_bytes)
    except ProtocolError:
        problem = ValueError(f"{fn}: the arguments are too large to send to the worker")
    except (TypeError, ValueError):
        problem = TypeError(f"{fn}: arguments must be JSON-serialisable (str, numbers, lists, dicts, None)")
    except RecursionError:
        problem = ValueError(f"{fn}: the arguments are nested too deeply")
    if problem is not None:
        raise problem
    was_user = runtime.in_user_code
    runtime.in_user_code = False
    try:
        runtime.channel.send_bytes(data)
        reply = runtime.channel.receive()
    except BaseException:  # the worker is gone or sent nonsense: nothing sensible left to do
        os._exit(EXIT_PROTOCOL)
    finally:
        runtime.in_user_code = was_user
    runtime.raise_pending()
    op = reply.get("op")
    if op == "response":
        return reply.get("value")
    if op == "call_error":
        raise RuntimeError(str(reply.get("message", "the call was rejected")))
    os._exit(EXIT_PROTOCOL)


def _text(value: Any, name: str, fn: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{fn}: {name} must be a str, not {type(value).__name__}")
    return str.__str__(value)


def _model(value: Any, fn: str) -> str | None:
    if value is None:
        return None
    return _text(value, "model", fn)


def _texts(value: Any, name: str, fn: str) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{fn}: {name} must be a list of str, not {type(value).__name__}")
    return [_text(v, f"each of {name}", fn) for v in value]


def _flag(value: Any, fn: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise TypeError(f"{fn}: inherit_memory must be True, False or None")


def _str_result(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _list_result(value: Any, count: int) -> list[str]:
    if not isinstance(value, list):
        return [_str_result(value)] * count
    return [_str_result(v) for v in value]


class LLMQuery:
    __slots__ = ()

    def __call__(self, prompt: Any, model: Any = None) -> str:
        args = {"prompt": _text(prompt, "prompt", "llm_query"), "model": _model(model, "llm_query")}
        return _str_result(call("llm_query", args))

    def __repr__(self) -> str:
        return "<REPL function llm_query(prompt, model=None) -> str>"


class LLMQueryBatched:
    __slots__ = ()

    def __call__(self, prompts: Any, model: Any = None) -> list[str]:
        batch = _texts(prompts, "prompts", "llm_query_batched")
        if not batch:
            return []
        args = {"prompts": batch, "model": _model(model, "llm_query_batched")}
        return _list_result(call("llm_query_batched", args), len(batch))

    def __repr__(self) -> str:
        return "<REPL function llm_query_batched(prompts, model=None) -> list[str]>"


class RLMQuery:
    __slots__ = ()

    # The reference's order: `rlm_query(prompt, model)`; a context is given by keyword only.
    def __call__(
        self, prompt: Any, model: Any = None, *, context: Any = None, inherit_memory: Any = None
    ) -> str:
        if model is not None and not isinstance(model, str):
            raise TypeError(
                "rlm_query: the second argument is the model (a str); pass a context as "
                f"rlm_query(prompt, context=...), not positionally (got {type(model).__name__})"
            )
        args = {
            "prompt": _text(prompt, "prompt", "rlm_query"),
            "context": context,
            "model": _model(model, "rlm_query"),
            "inherit_memory": _flag(inherit_memory, "rlm_query"),
        }
        return _str_result(call("rlm_query", args))

    def __repr__(self) -> str:
        return "<REPL function rlm_query(prompt, model=None, *, context=None, inherit_memory=None) -> str>"


class RLMQueryBatched:
    __slots__ = ()

    def __call__(
        self, prompts: Any, model: Any = None, contexts: Any = None, inherit_memory: Any = None
    ) -> list[str]:
        batch = _texts(prompts, "prompts", "rlm_query_batched")
        if contexts is not None:
            if not isinstance(contexts, (list, tuple)) or len(contexts) != len(batch):
                raise TypeError("rlm_query_batched: contexts must be a list as long as prompts")
            contexts = list(contexts)
        if not batch:
            return []
        args = {
            "prompts": batch,
            "model": _model(model, "rlm_query_batched"),
            "contexts": contexts,
            "inherit_memory": _flag(inherit_memory, "rlm_query_batched"),
        }
        return _list_result(call("rlm_query_batched", args), len(batch))

    def __repr__(self) -> str:
        return (
            "<REPL function rlm_query_batched(prompts, model=None, contexts=None, inherit_memory=None)"
            " -> list[str]>"
        )


class _Ranking:
    """A REPL ranking function (worker-side): passages and a query in, (index, score) pairs out."""

    __slots__ = ()
    name: str  # the REPL function's name, set by each subclass
    score = "score"

    def __call__(self, passages: Any, query: Any, k: Any = 10) -> list[tuple[int, float]]:
        fn = self.name
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise TypeError(f"{fn}: k must be a positive int")
        args = {"passages": _texts(passages, "passages", fn), "query": _text(query, "query", fn), "k": k}
        value = call(fn, args)
        if not isinstance(value, list):
            return []
        return [(int(pair[0]), float(pair[1])) for pair in value]

    def __repr__(self) -> str:
        return (
            f"<REPL function {self.name}(passages, query, k=10) -> list of (index, {self.score}), best first>"
        )


class RankPassages(_Ranking):
    __slots__ = ()
    name = "rank_passages"


class RankByMeaning(_Ranking):
    __slots__ = ()
    name = "rank_by_meaning"
    score = "similarity"


class _Tool:
    """A custom tool of the worker's (engine/tools.py): the call, by name, goes over the pipe.

    One subclass per tool name (`tool_stubs`), slot-less like every stub: no state to reach."""

    __slots__ = ()
    name: str
    signature: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return call("tool", {"name": self.name, "args": list(args), "kwargs": dict(kwargs)})
        except (TypeError, ValueError) as exc:  # arguments that are not JSON, or too large: name the tool
            raise type(exc)(str(exc).replace("tool:", f"{self.name}:", 1)) from None

    def __repr__(self) -> str:
        return f"<REPL tool {self.name}{self.signature}: runs in the worker, JSON data in and out>"


def tool_stubs(specs: Any) -> dict[str, Any]:
    """A stub per tool the worker offers; `specs` is the init message's list of {name, signature}."""
    stubs: dict[str, Any] = {}
    for spec in specs if isinstance(specs, list) else []:
        name = spec.get("name") if isinstance(spec, dict) else None
        if isinstance(name, str) and name.isidentifier() and not name.startswith("_"):
            signature = str(spec.get("signature") or "(...)")
            kind = type(f"Tool_{name}", (_Tool,), {"__slots__": (), "name": name, "signature": signature})
            stubs[name] = kind()
    return stubs


class Memory:
    """`memory["label"]`, `memory["label"] = text`, `memory.append/replace/read/labels/blocks`."""

    __slots__ = ()

    def __getitem__(self, label: Any) -> str:
        return _str_result(call("memory_read", {"label": _text(label, "label", "memory")}))

    def __setitem__(self, label: Any, text: Any) -> None:
        call("memory_set", {"label": _text(label, "label", "memory"), "text": _text(text, "text", "memory")})

    def __contains__(self, label: Any) -> bool:
        return label in self.blocks()

    def __iter__(self) -> Any:
        return iter(self.labels())

    def read(self, label: Any) -> str:
        return _str_result(call("memory_read", {"label": _text(label, "label", "memory.read")}))

    def get(self, label: Any, default: Any = None) -> Any:
        return self.blocks().get(_text(label, "label", "memory.get"), default)

    def append(self, label: Any, text: Any) -> None:
        fn = "memory.append"
        call("memory_append", {"label": _text(label, "label", fn), "text": _text(text, "text", fn)})

    def replace(self, label: Any, old: Any, new: Any) -> None:
        fn = "memory.replace"
        args = {
            "label": _text(label, "label", fn),
            "old": _text(old, "old", fn),
            "new": _text(new, "new", fn),
        }
        call("memory_replace", args)

    def blocks(self) -> dict[str, str]:
        value = call("memory_blocks", {})
        return {str(k): _str_result(v) for k, v in value.items()} if isinstance(value, dict) else {}

    def labels(self) -> list[str]:
        return list(self.blocks())

    def __repr__(self) -> str:
        return "<REPL memory: memory['label'], memory.append(label, text), memory.replace(label, old, new)>"


allow_writes_to(Memory)


def render_final(value: Any) -> str:
    """A final answer as text: str as is, dicts and lists as JSON, anything else through str()."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):
            return str(value)
    return str(value)


class Final:
    __slots__ = ()

    def __call__(self, value: Any) -> None:
        RUNTIME.final = render_final(value)
        raise FinalSignal()

    def __repr__(self) -> str:
        return "<REPL function FINAL(value): give the final answer and stop>"


def is_plain_data(value: Any, depth: int = 0) -> bool:
    """str, numbers, bools, None, and lists, tuples, sets and dicts of them (exact types): a value
    that turns into text without running any of the code's own methods."""
    kind = type(value)
    if kind in (str, int, float, bool, type(None)):
        return True
    if depth > 50:
        return False
    if kind in (list, tuple, set, frozenset):
        return all(is_plain_data(item, depth + 1) for item in value)
    if kind is dict:
        return all(is_plain_data(k, depth + 1) and is_plain_data(v, depth + 1) for k, v in dict.items(value))
    return False


class FinalVar:
    __slots__ = ()

    def __call__(self, name: Any, *, data_only: Any = False) -> None:
        """`data_only`: only a variable holding plain data answers, another is a NameError (a
        FINAL written in prose is read this way: a function or object answers as its name)."""
        if not isinstance(name, str):
            raise TypeError(
                'FINAL_VAR takes the name of a variable as a str, e.g. FINAL_VAR("result"); '
                "to answer with a value use FINAL(value)"
            )
        name = str.__str__(name).strip()
        namespace = RUNTIME.namespace
        if name.startswith("_") or name not in namespace:
            shown = name if len(name) <= 60 else name[:60] + "..."
            raise NameError(
                f"FINAL_VAR: there is no variable named {shown!r}; assign it first "
                "(or answer with FINAL(value))"
            )
        value = namespace[name]
        if data_only is True and not is_plain_data(value):
            raise NameError(f"FINAL_VAR: {name!r} does not hold plain data (str, numbers, lists, sets, dicts)")
        RUNTIME.final = render_final(value)
        raise FinalSignal()

    def __repr__(self) -> str:
        return "<REPL function FINAL_VAR(name): give the value of variable `name` as the final answer>"


def user_variables() -> list[tuple[str, Any]]:
    """The model's own names in the REPL namespace (not the API, not the context, not constants)."""
    reserved = RUNTIME.reserved
    return [(k, v) for k, v in list(RUNTIME.namespace.items()) if not k.startswith("_") and k not in reserved]


def describe(value: Any) -> str:
    kind = type(value).__name__
    try:
        size = len(value) if isinstance(value, (str, list, dict, tuple, set, frozenset, bytes)) else None
    except Exception:
        size = None
    return f"{kind} (len {size})" if size is not None else kind


class ShowVars:
    __slots__ = ()

    def __call__(self) -> None:
        variables = [(name, value) for name, value in user_variables() if name != "answer"]
        if not variables:
            text = "No variables defined yet."
        else:
            text = "Variables:\n" + "\n".join(f"  {name}: {describe(value)}" for name, value in variables)
        emit(text)

    def __repr__(self) -> str:
        return "<REPL function SHOW_VARS(): print the variables you have defined>"


def repl_api() -> dict[str, Any]:
    """The REPL API names, as fresh stub objects."""
    return {
        "llm_query": LLMQuery(),
        "llm_query_batched": LLMQueryBatched(),
        "rlm_query": RLMQuery(),
        "rlm_query_batched": RLMQueryBatched(),
        "rank_passages": RankPassages(),
        "rank_by_meaning": RankByMeaning(),
        "memory": Memory(),
        "FINAL": Final(),
        "FINAL_VAR": FinalVar(),
        "SHOW_VARS": ShowVars(),
    }
