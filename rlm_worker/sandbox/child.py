"""The sandbox process: a REPL that runs model-written cells under RestrictedPython and OS limits.

Why a process of its own: whatever the code does (loop forever, allocate 10 GB, crash the
interpreter) happens here, not in the worker. The worker starts it with an empty environment, in a
private directory it deletes as soon as this process runs, with `-I -S`; it then caps itself with
`setrlimit` (CPU seconds per cell and per execution, address space, file size, open files, no new
processes, no core dumps) and confines itself (`confine.py`: another uid when the worker is root,
no_new_privs, a seccomp filter) before it reads any code; the worker usually starts it inside
bubblewrap's namespaces (`isolation.py`). It talks to the worker only through `protocol` frames on two private
pipe descriptors; fds 0-2 point at /dev/null so nothing can write into the protocol stream.
"""

from __future__ import annotations

import math
import os
import resource
import signal
import sys
import types
from typing import Any

from rlm_worker.engine import repl_names
from rlm_worker.engine.repl_names import NOT_LOADED, THIS_RUNS_INPUT
from rlm_worker.sandbox import confine, policy, protocol
from rlm_worker.sandbox.protocol import ChannelClosed, ChildChannel
from rlm_worker.sandbox.stubs import (
    EXIT_CPU,
    EXIT_MEMORY,
    EXIT_PROTOCOL,
    RUNTIME,
    CellCpuExceeded,
    FinalSignal,
    Memory,
    render_final,
    repl_api,
    tool_stubs,
    user_variables,
)

_MAX_ERROR_CHARS = 20_000
_SHOWN_FRAMES = 12


class Settings:
    cell_cpu_seconds = 10
    execution_cpu_seconds = 300
    memory_bytes = 2 * 1024**3
    max_output_chars = 1_000_000
    max_frame_bytes = 64 * 1024 * 1024
    capped_by_execution = False  # this cell's CPU limit is what is left of the execution's
    execution_spent = False
    language_layer = True  # False only for tests of the OS layers (process.SubprocessSandbox)


def _set_limit(which: int, soft: int, hard: int | None = None) -> None:
    try:
        resource.setrlimit(which, (soft, soft if hard is None else hard))
    except (ValueError, OSError):
        pass


def apply_limits(config: dict[str, Any]) -> None:
    """Cap this process before it reads any code. Hard limits cannot be raised again."""
    cell = int(math.ceil(Settings.cell_cpu_seconds))
    _set_limit(resource.RLIMIT_CPU, cell, int(math.ceil(Settings.execution_cpu_seconds)) + cell + 5)
    _set_limit(resource.RLIMIT_AS, int(Settings.memory_bytes))
    _set_limit(resource.RLIMIT_FSIZE, int(config.get("max_file_bytes", 0)))
    _set_limit(resource.RLIMIT_NOFILE, int(config.get("open_files", 32)))
    _set_limit(resource.RLIMIT_CORE, 0)
    if hasattr(resource, "RLIMIT_NPROC"):
        _set_limit(resource.RLIMIT_NPROC, 0)


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def start_cpu_budget() -> bool:
    """Move the soft CPU limit to `cell_cpu_seconds` from now; False if the execution's CPU is spent."""
    used = _cpu_used()
    if Settings.execution_spent or used >= Settings.execution_cpu_seconds:
        Settings.execution_spent = True
        return False
    total = math.ceil(Settings.execution_cpu_seconds)
    soft = max(1, min(round(used + Settings.cell_cpu_seconds), total))
    Settings.capped_by_execution = soft == total
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except (ValueError, OSError):
        pass
    return True


def on_cpu_limit(signum: int, frame: Any) -> None:
    """SIGXCPU: end the cell; if the code swallowed that and is still spinning a second later, exit."""
    RUNTIME.cpu_signals += 1
    if RUNTIME.cpu_signals >= 2:
        os._exit(EXIT_CPU)
    if RUNTIME.in_user_code:
        raise CellCpuExceeded()
    RUNTIME.cpu_pending = True


def _execution_message() -> str:
    return f"the execution used up its {Settings.execution_cpu_seconds:g} s of REPL CPU time"


def _cpu_message() -> str:
    if Settings.capped_by_execution:
        Settings.execution_spent = True
        return _execution_message()
    return f"cell exceeded {Settings.cell_cpu_seconds:g} s CPU"


def _memory_message() -> str:
    return f"cell exceeded the {Settings.memory_bytes // (1024 * 1024)} MiB memory limit"


def format_error(exc: BaseException, source: str) -> str:
    """A traceback of the model's own lines only (frames compiled from `<cell>`)."""
    frames: list[tuple[int, str]] = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == policy.CELL_FILENAME:
            frames.append((tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    lines = source.splitlines()
    shown: list[str] = []
    if len(frames) > _SHOWN_FRAMES:
        hidden = len(frames) - _SHOWN_FRAMES
        frames = frames[:3] + [(-hidden, "")] + frames[-(_SHOWN_FRAMES - 3) :]
    for lineno, name in frames:
        if lineno < 0:
            shown.append(f"  [... {-lineno} more frames ...]")
            continue
        if name == "<module>":
            shown.append(f"  line {lineno}, in <cell>")
            if 0 < lineno <= len(lines) and lines[lineno - 1].strip():
                shown.append(f"    {lines[lineno - 1].strip()[:200]}")
        else:
            shown.append(f"  line {lineno}, in {name}")
    try:
        message = str(exc)
    except BaseException:
        message = "<exception message could not be shown>"
    header = type(exc).__name__
    last = f"{header}: {message}" if message else header
    text = "\n".join(["Traceback (most recent call last):", *shown, last]) if shown else last
    return text if len(text) <= _MAX_ERROR_CHARS else text[:_MAX_ERROR_CHARS] + "\n[... error text truncated]"


def _answer_final() -> str | None:
    """The cell's final from the `answer` dict, if the code set answer["ready"]."""
    answer = RUNTIME.namespace.get("answer")
    if not isinstance(answer, dict) or not dict.get(answer, "ready"):
        return None
    return render_final(dict.get(answer, "content", ""))


def run_cell(source: str) -> dict[str, Any]:
    """Compile and run one cell; the `result` message (never raises)."""
    buffer = policy.OutputBuffer(Settings.max_output_chars)
    policy.set_output_buffer(buffer)
    RUNTIME.final = None
    RUNTIME.cpu_signals = 0
    RUNTIME.cpu_pending = False
    error: str | None = None
    limit: str | None = None
    if not start_cpu_budget():
        limit = _execution_message()
        return _result(buffer, limit, limit)
    code, error = policy.compile_cell(source) if Settings.language_layer else _compile_plain(source)
    if code is not None and RUNTIME.cpu_pending:
        code, limit = None, _cpu_message()
    if code is not None:
        try:
            RUNTIME.in_user_code = True
            try:
                exec(code, RUNTIME.namespace)
            finally:
                RUNTIME.in_user_code = False
        except FinalSignal:
            pass
        except CellCpuExceeded:
            limit = _cpu_message()
        except MemoryError:
            limit = _memory_message()
        except BaseException as exc:
            error = format_error(exc, source)
        if RUNTIME.final is None:
            try:
                RUNTIME.in_user_code = True
                try:
                    RUNTIME.final = _answer_final()
                finally:
                    RUNTIME.in_user_code = False
            except CellCpuExceeded:
                limit = _cpu_message()
            except MemoryError:
                limit = _memory_message()
            except BaseException as exc:
                error = f"answer['content'] could not be turned into text: {type(exc).__name__}"
    rebound = restore_reserved_names()
    if RUNTIME.cpu_pending or RUNTIME.cpu_signals:
        limit = limit or _cpu_message()
    if limit is None and buffer.truncated:
        limit = f"cell output exceeded {Settings.max_output_chars} characters; the rest was dropped"
    if limit is not None:
        error = limit if error is None else f"{error}\n{limit}"
    return _result(buffer, error, limit, _rebound_notice(rebound))


def restore_reserved_names() -> list[str]:
    """Put back every name the REPL owns that the cell rebound or deleted; the names, sorted.

    The API and the data (`context`, a session's `context_<n>` and `history`, the constants) go
    back to the very objects the REPL started with; `answer` may be rebound to another dict (the
    reference allows `answer = {"content": ..., "ready": True}`), anything else makes it a fresh one.
    """
    namespace = RUNTIME.namespace
    rebound = []
    for name, value in RUNTIME.pinned.items():
        if namespace.get(name, _MISSING) is not value:
            namespace[name] = value
            rebound.append(name)
    if not isinstance(namespace.get(repl_names.ANSWER), dict):
        namespace[repl_names.ANSWER] = _fresh_answer()
        rebound.append(repl_names.ANSWER)
    return sorted(rebound)


_MISSING = object()


def _fresh_answer() -> dict[str, Any]:
    return {"content": "", "ready": False}


def _rebound_notice(names: list[str]) -> str:
    if not names:
        return ""
    shown = ", ".join(f"`{name}`" for name in names)
    return (
        f"Note: {shown} {'is a name' if len(names) == 1 else 'are names'} the REPL owns; this cell "
        "rebound or deleted it, and it was put back as it was. Keep your own values under other names."
    )


def _compile_plain(source: str) -> tuple[types.CodeType | None, str | None]:
    """Tests of the OS layers only: the cell as plain Python, with the real builtins."""
    try:
        return compile(source, policy.CELL_FILENAME, "exec"), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _result(
    buffer: policy.OutputBuffer, error: str | None, limit: str | None, notice: str = ""
) -> dict[str, Any]:
    return {
        "op": "result",
        "stdout": buffer.text(),
        "stderr": notice,
        "error": error,
        "final": RUNTIME.final,
        "limit_hit": limit,
    }


def _encode_result(message: dict[str, Any]) -> bytes:
    """The result frame; an oversized final answer is cut so the frame always fits."""
    try:
        body = protocol.dumps(message).encode("utf-8")
    except UnicodeEncodeError:
        body = protocol.dumps(message, ascii_only=True).encode("ascii")
    if len(body) > Settings.max_frame_bytes and message["final"] is not None:
        room = max(0, Settings.max_frame_bytes // 8 - 1000)
        message["final"] = message["final"][:room]
        message["error"] = (message["error"] or "") + "\nthe final answer was too large and was cut"
        body = protocol.dumps(message, ascii_only=True).encode("ascii")
    return protocol.frame_bytes(body, Settings.max_frame_bytes)


def variables_frame() -> bytes:
    """The JSON-serialisable user variables and the names of the others (functions, classes,
    objects, non-finite numbers), as one frame. Imported modules are neither."""
    start_cpu_budget()
    parts: list[bytes] = []
    dropped: list[str] = []
    room = Settings.max_frame_bytes - 1024 * 1024
    for name, value in user_variables():
        if isinstance(value, types.ModuleType):
            continue  # imports are not variables
        if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType, Memory)):
            dropped.append(name)
            continue
        try:
            RUNTIME.in_user_code = True  # a dict subclass's items() is the code's own, and may spin
            try:
                text = protocol.dumps(value)
            finally:
                RUNTIME.in_user_code = False
            try:
                encoded = text.encode("utf-8")
            except UnicodeEncodeError:
                encoded = protocol.dumps(value, ascii_only=True).encode("ascii")
        except BaseException:
            dropped.append(name)
            continue
        if len(encoded) + len(name) + 8 > room:
            dropped.append(name)
            continue
        room -= len(encoded) + len(name) + 8
        parts.append(protocol.dumps(name, ascii_only=True).encode("ascii") + b":" + encoded)
    RUNTIME.cpu_signals = 0
    RUNTIME.cpu_pending = False
    body = (
        b'{"op":"variables","variables":{'
        + b",".join(parts)
        + b'},"dropped":'
        + protocol.dumps(dropped, ascii_only=True).encode("ascii")
        + b"}"
    )
    return protocol.frame_bytes(body, Settings.max_frame_bytes)


def _settable(name: Any, reserved: set[str]) -> bool:
    """A caller-given variable or constant may become a REPL global: a public, unreserved name."""
    return isinstance(name, str) and name.isidentifier() and not name.startswith("_") and name not in reserved


def init_namespace(message: dict[str, Any]) -> None:
    """The REPL namespace: restricted globals, the session's variables, constants, the API, context.

    A session's earlier inputs arrive once each (`session["contexts"]`, deduplicated) with the
    order of the runs that used them (`session["order"]`, see `engine/session_history.py`):
    `context_<i>` is run i's input, the same object however many runs shared it, and the last one,
    `context_<n>`, is `context` (a run without a session has only `context_0`).
    """
    if Settings.language_layer:
        namespace = policy.restricted_globals()
    else:  # tests of the OS layers only: real builtins, so the cell can try anything
        import builtins

        namespace = {"__builtins__": builtins, "__name__": "__repl__", "print": policy.print_factory()._call_print}
    variables = message.get("variables") or {}
    constants = dict(message.get("constants") or {})
    session = constants.pop(repl_names.SESSION_CONSTANT, None) or {}
    api = {**tool_stubs(message.get("tools")), **repl_api()}  # a tool never shadows the API
    pinned: dict[str, Any] = dict(api)
    context = pinned[repl_names.CONTEXT] = message.get("context")
    contexts = session.get("contexts") or []
    order = [*(session.get("order") or []), THIS_RUNS_INPUT]
    for index, which in enumerate(order):
        pinned[repl_names.numbered_context(index)] = (
            context if which == THIS_RUNS_INPUT else None if which == NOT_LOADED else contexts[which]
        )
    history = pinned[repl_names.HISTORY] = session.get("history") or []
    for index, run in enumerate(history):  # the reference's `history_<i>`: run i's messages
        pinned[repl_names.numbered_history(index)] = run["messages"]
    pinned[repl_names.COMPACTION_HISTORY] = []  # the engine's compaction adds to it
    reserved = set(pinned) | (repl_names.REPL_DATA - {repl_names.ANSWER})
    for name, value in variables.items():
        if _settable(name, reserved):
            namespace[name] = value
    for name, value in constants.items():
        if _settable(name, reserved):
            pinned[name] = value
            reserved.add(name)
    namespace.update(pinned)
    if not isinstance(namespace.get(repl_names.ANSWER), dict):
        namespace[repl_names.ANSWER] = _fresh_answer()
    RUNTIME.namespace = namespace
    RUNTIME.pinned = pinned
    RUNTIME.reserved = frozenset(reserved)


def serve(channel: ChildChannel) -> None:
    """Answer the worker's messages until it closes the pipe."""
    while True:
        try:
            message = channel.receive()
        except ChannelClosed:  # the worker is gone (closed us, or died)
            os._exit(0)
        op = message["op"]
        if op == "exec" and isinstance(message.get("code"), str):
            channel.send_bytes(_encode_result(run_cell(message["code"])))
        elif op == "get_variables":
            channel.send_bytes(variables_frame())
        elif op == "init":
            if message.get("text_context") is True:
                message["context"] = channel.receive_raw().decode("utf-8", "surrogatepass")
            init_namespace(message)
            channel.send({"op": "ready", "pid": os.getpid()})
        elif op == "shutdown":
            os._exit(0)
        else:
            os._exit(EXIT_PROTOCOL)


def _private_fds() -> tuple[int, int]:
    """Move the protocol pipes off fds 0/1 and point 0-2 at /dev/null."""
    read_fd, write_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    return read_fd, write_fd


def _import_allowed_modules() -> None:
    import importlib

    for name in sorted(policy.ALLOWED_MODULES):
        importlib.import_module(name)


def main(config: dict[str, Any]) -> None:
    """Entry point (see `process.BOOTSTRAP`): `config` holds limits only, never secrets."""
    try:
        Settings.cell_cpu_seconds = float(config.get("cell_cpu_seconds", Settings.cell_cpu_seconds))
        Settings.execution_cpu_seconds = float(
            config.get("execution_cpu_seconds", Settings.execution_cpu_seconds)
        )
        Settings.memory_bytes = int(config.get("memory_bytes", Settings.memory_bytes))
        Settings.max_output_chars = int(config.get("max_output_chars", Settings.max_output_chars))
        Settings.max_frame_bytes = int(config.get("max_frame_bytes", Settings.max_frame_bytes))
        Settings.language_layer = config.get("language_layer") is not False
        read_fd, write_fd = _private_fds()
        sys.setrecursionlimit(1000)
        apply_limits(config)
        if config.get("drop_to") is not None and not config.get("jailed"):
            _import_allowed_modules()  # no mount namespace: the new uid may not reach the stdlib
        confine.confine(config)
        signal.signal(signal.SIGXCPU, on_cpu_limit)
        channel = ChildChannel(read_fd, write_fd, Settings.max_frame_bytes)
        RUNTIME.channel = channel
        serve(channel)
    except MemoryError:
        os._exit(EXIT_MEMORY)
    except CellCpuExceeded:
        os._exit(EXIT_CPU)
    except BaseException:
        os._exit(EXIT_PROTOCOL)
    os._exit(0)
