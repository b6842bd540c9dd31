"""Custom tools: Python functions the operator registers, offered to the REPL by name.

Why they run here, in the worker, and not in the sandbox: a tool is the operator's own code (a
database lookup, an internal API, a parser), trusted and free to import what it needs; the
model's code is not. So the sandbox gets only a stub per tool name, which sends the call over the
pipe like `llm_query` does; arguments and results cross as JSON data, and nothing new becomes
importable in the sandbox. Tenants cannot add tools: the set is fixed when the worker starts
(`rlm_worker.tool_registry` reads RLM_TOOLS and the `rlm_engine.tools` entry points).

Each call is a `tool` node of the trace (arguments, result or error, timing) and runs under the
execution's guards: it counts against `max_tool_calls`, and it runs on a thread of its own while
the cell's thread waits, so a tool that hangs is abandoned, not waited for, when the tool's time
limit passes (an error string to the code) or the execution is cancelled or out of time (the
cell ends, as for a sub-call). Python cannot kill a thread: an abandoned tool keeps its thread
until it returns, so at most MAX_ABANDONED of them may linger in a process before tools are
refused there.
"""

from __future__ import annotations

import contextvars
import inspect
import json
import keyword
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rlm_worker.engine import repl_names
from rlm_worker.engine.budget import Budget, GuardTripped
from rlm_worker.engine.ports import CallRejected, TraceSink
from rlm_worker.engine.tree import TreeCursor
from rlm_worker.engine.types import utcnow

#: Names a tool may not take besides the REPL's own (engine/repl_names.py): the constants that
#: sessions and root programs get.
PROGRAM_CONSTANTS = frozenset({"DEFAULT_CHUNK_SIZE", "QUESTION", "TIMEOUT_SECONDS"})
#: How often a waiting call looks whether its execution was stopped.
POLL_SECONDS = 0.05
#: Tool threads still running after their call was abandoned, in one process, before tools are refused.
MAX_ABANDONED = 32
#: Characters of a tool's arguments and result kept in its trace node.
TRACE_CHARS = 10_000
DOC_CHARS = 600
#: A tool node's status when a guard stopped the execution while the tool ran.
STOPPED_STATUS = {"cancelled": "cancelled", "timeout_seconds": "timed_out"}


class ToolError(ValueError):
    """A tool that cannot be offered (a reserved or invalid name, not a function)."""


def check_tool_name(name: str) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ToolError(f"tool name {name!r} is not a Python identifier")
    if name.startswith("_"):
        raise ToolError(f"tool name {name!r} starts with '_' (the REPL hides such names)")
    if repl_names.is_reserved(name) or name in PROGRAM_CONSTANTS:
        raise ToolError(f"tool name {name!r} is one of the REPL's own names")
    return name


@dataclass(frozen=True)
class Tool:
    """One registered function: its REPL name, the function, and what the prompt says of it."""

    name: str
    function: Callable[..., Any]
    signature: str
    doc: str

    @classmethod
    def of(cls, name: str, function: Callable[..., Any]) -> Tool:
        if not callable(function):
            raise ToolError(f"tool {name!r} is a {type(function).__name__}, not a function")
        signature = _signature(function)
        doc = inspect.getdoc(function) or "(no description)"
        return cls(check_tool_name(name), function, signature, doc)

    def describe(self) -> str:
        doc = " ".join(self.doc.split())
        if len(doc) > DOC_CHARS:
            doc = doc[:DOC_CHARS] + " ..."
        return f"  - `{self.name}{self.signature}`: {doc}"


def _signature(function: Callable[..., Any]) -> str:
    """`(text: str, k: int = 3) -> list[str]`, with string annotations (`from __future__ import
    annotations`) resolved where they can be."""
    for resolve in (True, False):
        try:
            return str(inspect.signature(function, eval_str=resolve))
        except (NameError, TypeError, ValueError, SyntaxError):
            continue
    return "(...)"


class ToolBox:
    """The tools one worker offers, by name; `timeout_seconds` bounds one call."""

    def __init__(self, tools: Iterable[Tool] = (), timeout_seconds: float = 60.0) -> None:
        self.tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self.tools:
                raise ToolError(f"two tools are named {tool.name!r}")
            self.tools[tool.name] = tool
        self.timeout_seconds = timeout_seconds

    def __bool__(self) -> bool:
        return bool(self.tools)

    def names(self) -> list[str]:
        return sorted(self.tools)

    def sandbox_specs(self) -> list[dict[str, str]]:
        """What the sandbox needs to make a stub per tool: the name and the signature (for repr)."""
        return [{"name": t.name, "signature": t.signature} for t in self.tools.values()]

    def prompt_section(self) -> str:
        """The root prompt's lines on the tools ("" when there are none)."""
        if not self.tools:
            return ""
        lines = "\n".join(self.tools[name].describe() for name in self.names())
        return (
            "- Tools of this server (they run outside the REPL; arguments and results are JSON data: "
            "str, numbers, bool, None, lists, dicts; a failed call returns a str starting with "
            '"Error:"):\n' + lines + "\n"
        )


class _Abandoned:
    """Tool threads left running after their calls were abandoned, in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self) -> None:
        with self._lock:
            self.count += 1

    def done(self) -> None:
        with self._lock:
            self.count -= 1


abandoned = _Abandoned()


def call_tool(
    box: ToolBox, args: dict[str, Any], budget: Budget, sink: TraceSink, cursor: TreeCursor, depth: int
) -> Any:
    """Run one tool call from the REPL: `args` is {"name", "args", "kwargs"} as the stub sent it."""
    name = args.get("name")
    tool = box.tools.get(name) if isinstance(name, str) else None
    if tool is None:
        offered = ", ".join(box.names()) or "none"
        raise CallRejected(f"there is no tool named {str(name)[:60]!r} (tools: {offered})")
    positional = args.get("args") or []
    keywords = args.get("kwargs") or {}
    if not isinstance(positional, list) or not isinstance(keywords, dict):
        raise CallRejected(f"{tool.name}: arguments must be a list and a dict")
    budget.reserve_tool_call()
    node = cursor.child("tool", depth, prompt=_call_text(tool, positional, keywords))
    sink.node_started(node)
    limit = min(box.timeout_seconds, budget.remaining_seconds())
    try:
        value = _run_guarded(tool, positional, keywords, limit, budget)
    except GuardTripped as exc:  # cancelled, out of time, or another guard: the cell ends, the trace says why
        node.status = STOPPED_STATUS.get(exc.guard, "failed")
        _finish(node, sink, error=f"stopped by guard {exc.guard}: {exc}")
        raise
    except _ToolTimeout:
        node.status = "timed_out"
        message = f"tool {tool.name} did not answer within {limit:g} s; it was abandoned"
        _finish(node, sink, error=message)
        return f"Error: {message}"
    except Exception as exc:  # the tool's own failure: an error string for the code, as a sub-call's
        node.status = "failed"
        message = f"tool {tool.name} failed: {type(exc).__name__}: {exc}"
        _finish(node, sink, error=message)
        return f"Error: {message}"
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        node.status = "failed"
        message = f"tool {tool.name} returned a value that is not JSON data ({type(exc).__name__}: {exc})"
        _finish(node, sink, error=message)
        return f"Error: {message}"
    node.status = "succeeded"
    _finish(node, sink, response=_clip(text))
    return value


class _ToolTimeout(Exception):
    pass


def _run_guarded(
    tool: Tool, positional: list[Any], keywords: dict[str, Any], limit: float, budget: Budget
) -> Any:
    """The tool's value, its exception re-raised, _ToolTimeout after `limit` s, or GuardTripped
    when the execution stops first. The tool runs on a daemon thread: waiting never blocks a stop."""
    if abandoned.count >= MAX_ABANDONED:
        raise RuntimeError(f"{abandoned.count} earlier tool calls still hang in this worker; try again later")
    outcome: dict[str, Any] = {}
    state = {"finished": False, "abandoned": False}
    lock = threading.Lock()
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = tool.function(*positional, **keywords)
        except BaseException as exc:  # reported to the waiting cell, never raised on this thread
            outcome["error"] = exc
        finally:
            with lock:
                state["finished"] = True
                if state["abandoned"]:
                    abandoned.done()
            done.set()

    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(run,), name=f"rlm-tool-{tool.name}", daemon=True)
    deadline = time.monotonic() + limit
    thread.start()
    while not done.wait(POLL_SECONDS):
        stop = _stopped(budget)
        if stop is None and time.monotonic() < deadline:
            continue
        with lock:
            if not state["finished"]:
                state["abandoned"] = True
                abandoned.add()
        if state["abandoned"]:
            if stop is not None:
                raise stop
            raise _ToolTimeout()
        break  # it finished in this very moment: use its outcome
    error = outcome.get("error")
    if isinstance(error, Exception):
        raise error
    if error is not None:  # SystemExit and the like end the tool, never the worker's thread
        raise RuntimeError(f"{type(error).__name__}: {error}")
    return outcome.get("value")


def _stopped(budget: Budget) -> GuardTripped | None:
    try:
        budget.check()
    except GuardTripped as exc:
        return exc
    return None


def _call_text(tool: Tool, positional: list[Any], keywords: dict[str, Any]) -> str:
    parts = [json.dumps(v, ensure_ascii=False, default=str) for v in positional]
    parts += [f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in keywords.items()]
    return _clip(f"{tool.name}({', '.join(parts)})")


def _clip(text: str) -> str:
    return text if len(text) <= TRACE_CHARS else text[:TRACE_CHARS] + f" ... ({len(text):,} characters)"


def _finish(node: Any, sink: TraceSink, response: str | None = None, error: str | None = None) -> None:
    node.response, node.error, node.finished_at = response, error, utcnow()
    sink.node_finished(node)
