"""The worker's side of the sandbox: starts the REPL process, runs cells, enforces the limits.

Why: the engine needs a `Sandbox` (see `rlm_worker.engine.ports`) whose failures can never take
the worker down. Each sandbox is a fresh OS process started with an empty environment, in a
private, already deleted directory, with no inherited descriptors and in a session of its own. Every
read and write on its pipes has a deadline; every message it sends is validated; a cell that
overruns its wall-clock time (time spent answering its calls excluded) or its CPU time is killed
with its whole process group, and the next cell gets a fresh process.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from rlm_worker import metrics
from rlm_worker.engine.ports import CallHandler, CallRejected, SandboxFactory
from rlm_worker.engine.types import CellResult
from rlm_worker.sandbox.isolation import CODE_ROOT, IsolationPlan, bwrap_argv, checked_plan
from rlm_worker.sandbox.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    HEADER,
    ChannelClosed,
    ChannelTimeout,
    ProtocolError,
    WorkerChannel,
    encode_frame,
)
from rlm_worker.sandbox.stubs import EXIT_CPU, EXIT_MEMORY, EXIT_PROTOCOL

log = logging.getLogger(__name__)

#: What the interpreter runs: put the two directories it needs on sys.path, then hand over.
BOOTSTRAP = (
    "import sys, json\n"
    "c = json.loads(sys.argv[1])\n"
    "sys.path[:0] = c['path']\n"
    "from rlm_worker.sandbox.child import main\n"
    "main(c)\n"
)

_WATCH_INTERVAL = 0.5  # how often a waiting worker checks the cell's CPU time
_CPU_GRACE = 2.0  # the child's own SIGXCPU handling gets this long before the worker kills it
_RESTARTED = "the REPL was restarted; variables were lost"
_SLICE_CHARS = 1 << 20  # a str context is encoded and written this many characters at a time


@dataclass(frozen=True)
class SandboxConfig:
    """Limits of one REPL process. Times in seconds, sizes in bytes (output in characters)."""

    cell_cpu_seconds: float = 10
    cell_timeout_seconds: float = 60  # wall clock, time spent answering the cell's calls excluded
    execution_cpu_seconds: float = 300  # CPU for all cells of one REPL process
    memory_bytes: int = 2 * 1024**3  # RLIMIT_AS of the REPL process
    max_output_chars: int = 1_000_000  # printed output kept per cell
    max_file_bytes: int = 1024 * 1024  # RLIMIT_FSIZE (the code cannot open files anyway)
    open_files: int = 32  # RLIMIT_NOFILE
    python_executable: str = field(default_factory=lambda: sys.executable)
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    startup_timeout_seconds: float = 30  # start-up, including sending a large context
    #: The worker's custom tools, as {name, signature} (engine/tools.py): a REPL stub for each.
    tools: tuple[tuple[str, str], ...] = ()
    isolation: str = "auto"  # the OS layers (isolation.py): required, auto or off
    sandbox_uid: int = 65534  # the uid and gid a REPL takes when the worker is root
    sandbox_gid: int = 65534


class SandboxError(RuntimeError):
    """The REPL process could not be started or stopped answering."""


class LiveProcesses:
    """How many REPL processes of this worker process are alive now, and the most at once.

    Counted from start to reaping, whatever ends them; the sandbox caps (engine/sandbox_slots.py)
    are checked against this in tests, and an operator can read it while debugging.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.peak = 0

    def started(self) -> None:
        with self._lock:
            self.count += 1
            self.peak = max(self.peak, self.count)
        metrics.sandbox_started()

    def ended(self) -> None:
        with self._lock:
            self.count -= 1
        metrics.sandbox_ended()

    def reset_peak(self) -> None:
        with self._lock:
            self.peak = self.count


live_processes = LiveProcesses()


def _code_roots() -> list[str]:
    """The directories holding `rlm_worker` and `RestrictedPython` (the child runs with -I -S)."""
    roots = [str(Path(__file__).resolve().parents[2])]
    spec = find_spec("RestrictedPython")
    if spec is not None and spec.origin:
        root = str(Path(spec.origin).resolve().parents[1])
        if root not in roots:
            roots.append(root)
    return roots


def _utf8_slices(text: str) -> Iterator[bytes]:
    """`text` as UTF-8, slice by slice, so the worker never holds a whole encoded copy of a context.
    Together the same bytes as `text.encode("utf-8", "surrogatepass")`: slices end between code points."""
    for start in range(0, len(text), _SLICE_CHARS):
        yield text[start : start + _SLICE_CHARS].encode("utf-8", "surrogatepass")


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else sum(len(piece) for piece in _utf8_slices(text))


def _grow_pipe(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1024 * 1024)
    except (ImportError, AttributeError, OSError):
        pass


def _remove_directory(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError as exc:  # not empty: nothing should ever write there, so keep it to look at
        log.warning("could not remove the sandbox directory %s: %s", path, exc)


class _Process:
    """One REPL process and its pipes.

    Its working directory is made empty and private (mode 0700) and removed as soon as the
    process has started in it: the process keeps a cwd in which no file can be created or found,
    and no exit path, not even the worker being killed, can leave the directory behind.
    """

    def __init__(self, config: SandboxConfig, language_layer: bool = True) -> None:
        self.config = config
        self.killed_for: str | None = None
        plan = _plan(config)
        self.jailed = plan.bwrap is not None
        child_config = {
            "path": [CODE_ROOT] if self.jailed else _code_roots(),
            "cell_cpu_seconds": config.cell_cpu_seconds,
            "execution_cpu_seconds": config.execution_cpu_seconds,
            "memory_bytes": config.memory_bytes,
            "max_output_chars": config.max_output_chars,
            "max_file_bytes": config.max_file_bytes,
            "open_files": config.open_files,
            "max_frame_bytes": config.max_frame_bytes,
            "drop_to": plan.drop_to,
            "no_new_privs": plan.no_new_privs,
            "seccomp_bpf": plan.seccomp_bpf.hex() if plan.seccomp_bpf else None,
            "language_layer": language_layer,
            "jailed": self.jailed,
        }
        self._cpu_pid: int | None = None
        info_read = info_write = None
        if self.jailed:
            assert plan.bwrap is not None
            info_read, info_write = os.pipe()
            prefix, python = bwrap_argv(plan.bwrap, config.python_executable, info_write)
            directory = "/"  # bubblewrap gives the REPL an empty, private /tmp as its cwd
        else:
            prefix, python = [], config.python_executable
            directory = tempfile.mkdtemp(prefix="rlm-sandbox-")
        command = [
            *prefix,
            python,
            "-I",
            "-S",
            "-B",
            "-X",
            "utf8",
            "-c",
            BOOTSTRAP,
            json.dumps(child_config),
        ]
        try:
            self.popen = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={},
                cwd=directory,
                close_fds=True,
                pass_fds=() if info_write is None else (info_write,),
                start_new_session=True,
            )
        except BaseException:
            if info_read is not None:
                os.close(info_read)
            raise
        finally:  # Popen returns once the child has changed into the directory and exec'd
            if info_write is not None:
                os.close(info_write)
            if not self.jailed:
                _remove_directory(directory)
        self._info_fd = info_read
        live_processes.started()
        self._counted = True
        assert self.popen.stdin is not None and self.popen.stdout is not None
        _grow_pipe(self.popen.stdin.fileno())
        _grow_pipe(self.popen.stdout.fileno())
        self.channel = WorkerChannel(
            self.popen.stdout.fileno(), self.popen.stdin.fileno(), config.max_frame_bytes
        )
        self._clock_ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    @property
    def pid(self) -> int:
        """The process the worker started (bubblewrap, when jailed): its group is the sandbox's."""
        return self.popen.pid

    @property
    def repl_pid(self) -> int:
        """The interpreter running the cells."""
        return self._cpu_pid or self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def started(self) -> None:
        """Once the REPL said `ready`: learn its pid from bubblewrap (`--info-fd`), whose own pid
        is what `popen` holds, so the CPU watch reads the REPL's time, not bubblewrap's; and make
        it the first process the kernel's OOM killer picks, before the worker."""
        self._learn_repl_pid()
        _first_for_oom_killer(self.repl_pid)

    def _learn_repl_pid(self) -> None:
        fd, self._info_fd = self._info_fd, None
        if fd is None:
            return
        try:
            data = b""
            os.set_blocking(fd, False)
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                try:
                    chunk = os.read(fd, 4096)
                except BlockingIOError:
                    time.sleep(0.005)
                    continue
                if not chunk:
                    break
                data += chunk
            init = json.loads(data.decode("utf-8")).get("child-pid")
            self._cpu_pid = _child_of(init) if isinstance(init, int) and init > 0 else None
        except (OSError, ValueError):
            log.warning("bubblewrap did not say the REPL's pid; its CPU time is watched by rlimit only")
        finally:
            os.close(fd)

    def cpu_seconds(self) -> float | None:
        """CPU time used so far (from /proc); None where /proc is not available."""
        try:
            with open(f"/proc/{self.repl_pid}/stat", "rb") as handle:
                data = handle.read()
            fields = data[data.rindex(b")") + 2 :].split()
            return (int(fields[11]) + int(fields[12])) / self._clock_ticks
        except (OSError, ValueError, IndexError):
            return None

    def kill(self, reason: str | None = None) -> None:
        if reason is not None and self.killed_for is None:
            self.killed_for = reason
        if self.popen.returncode is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail
                log.error("sandbox process %s did not die after SIGKILL", self.popen.pid)
            if self._cpu_pid is not None:
                _wait_gone(self._cpu_pid)
        self._uncount()

    def _uncount(self) -> None:
        """Once the process is reaped, it no longer counts as alive."""
        if self._counted and self.popen.returncode is not None:
            self._counted = False
            live_processes.ended()

    def exit_code(self, wait: float = 2.0) -> int | None:
        """The REPL's exit code; negative for a signal (bubblewrap reports one as 128 + signal)."""
        try:
            code = self.popen.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.popen.returncode
        if self.jailed and code is not None and code > 128:
            return 128 - code
        return code

    def close(self) -> None:
        self.kill()
        if self._info_fd is not None:
            os.close(self._info_fd)
            self._info_fd = None
        for stream in (self.popen.stdin, self.popen.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
        return int(data[data.rindex(b")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _child_of(init: int) -> int | None:
    """The REPL: the one process whose parent is bubblewrap's PID 1 `init` (almost always the next
    pid; otherwise found by a walk of /proc)."""
    if _parent_of(init + 1) == init:
        return init + 1
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    for name in names:
        if name.isdigit() and _parent_of(int(name)) == init:
            return int(name)
    return None


def _first_for_oom_killer(pid: int) -> None:
    """oom_score_adj 1000: when memory runs out (a container's limit, the host), a REPL goes first.
    Raising it needs no privilege; where /proc is missing nothing changes."""
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w", encoding="ascii") as handle:
            handle.write("1000")
    except OSError:
        pass


def _wait_gone(pid: int, timeout: float = 2.0) -> None:
    """Until the killed REPL is dead: bubblewrap is reaped first, the REPL in its namespace just after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                data = handle.read()
        except OSError:
            return
        if data[data.rindex(b")") + 2 : data.rindex(b")") + 3] in (b"Z", b"X"):
            return
        time.sleep(0.002)


def _close_quietly(box: list[_Process | None]) -> None:
    process = box[0]
    box[0] = None
    if process is not None:
        try:
            process.close()
        except Exception:  # pragma: no cover - best effort at interpreter exit
            pass


class SubprocessSandbox:
    """A REPL in its own process; its variables persist between `execute` calls."""

    def __init__(
        self,
        context: Any,
        variables: dict[str, Any] | None = None,
        constants: dict[str, Any] | None = None,
        config: SandboxConfig | None = None,
        *,
        _language_layer: bool = True,
    ) -> None:
        self.config = config or SandboxConfig()
        # Tests only (tests/security/test_os_layers.py): False runs cells as plain Python, to show
        # the OS layers hold by themselves. No setting, request field or factory passes it: the
        # factory below calls this class with four arguments, and SandboxConfig has no such field.
        self._language_layer = _language_layer is not False
        text = isinstance(context, str)
        init = {
            "op": "init",
            "context": None if text else context,
            "text_context": text,
            "variables": variables or {},
            "constants": constants or {},
            "tools": [{"name": name, "signature": signature} for name, signature in self.config.tools],
        }
        # A str context follows as one raw UTF-8 frame (no JSON), encoded anew at each (re)start.
        self._text_context: str | None = context if text else None
        try:
            self._init_frame = encode_frame(init, self.config.max_frame_bytes)
            if text:
                size = _utf8_length(context)
                if size > self.config.max_frame_bytes:
                    raise ProtocolError(
                        f"{size} bytes exceed the {self.config.max_frame_bytes}-byte frame limit"
                    )
                self._text_header = HEADER.pack(size)
        except ProtocolError as exc:
            raise SandboxError(f"the context is too large for the REPL: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise SandboxError(f"the context, variables and constants must be JSON: {exc}") from None
        self._box: list[_Process | None] = [None]
        self._closed = False
        self._stopped: str | None = None
        self._finalizer = weakref.finalize(self, _close_quietly, self._box)
        self._start()

    # -- process lifecycle ----------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        """Kill the REPL process now, from any thread, and reap it: the running cell fails with
        `reason` and no fresh process is started (its execution is ending)."""
        self._stopped = reason
        process = self._box[0]
        if process is not None:
            process.kill(reason)

    @property
    def pid(self) -> int | None:
        """The current REPL process id (for tests and diagnostics): the interpreter's, also when
        bubblewrap started it."""
        process = self._box[0]
        return process.repl_pid if process is not None else None

    @property
    def group_leader(self) -> int | None:
        """The process group the worker kills (bubblewrap's, when jailed)."""
        process = self._box[0]
        return process.pid if process is not None else None

    @property
    def jailed(self) -> bool:
        """Whether the current REPL process runs in bubblewrap's namespaces."""
        process = self._box[0]
        return process is not None and process.jailed

    def _start(self) -> _Process:
        process = _Process(self.config, self._language_layer)
        try:
            self._send_init(process.channel)
            ready = process.channel.receive(self.config.startup_timeout_seconds)
            if ready["op"] != "ready":
                raise ProtocolError(f"expected ready, got {ready['op']}")
            process.started()
        except (ChannelClosed, ChannelTimeout, ProtocolError) as exc:
            code = process.exit_code(wait=0.5) if not isinstance(exc, ChannelTimeout) else None
            process.close()
            detail = f" (exit code {code})" if code is not None else ""
            raise SandboxError(f"could not start the REPL process: {exc}{detail}") from None
        except BaseException:
            process.close()
            raise
        self._box[0] = process
        return process

    def _send_init(self, channel: WorkerChannel) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_seconds
        channel.send_bytes(self._init_frame, self.config.startup_timeout_seconds)
        if self._text_context is not None:
            channel.send_bytes(self._text_header, deadline - time.monotonic())
            for piece in _utf8_slices(self._text_context):
                channel.send_bytes(piece, deadline - time.monotonic())

    def _replace(self) -> str:
        """Drop the current process and start a fresh one; the note to append to the error."""
        _close_quietly(self._box)
        try:
            self._start()
        except SandboxError as exc:
            return f"the REPL could not be restarted ({exc}); it will be retried at the next cell"
        return _RESTARTED

    def _live_process(self) -> tuple[_Process, str | None]:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        if self._stopped is not None:
            raise SandboxError(self._stopped)
        process = self._box[0]
        if process is not None and process.alive():
            return process, None
        _close_quietly(self._box)
        return self._start(), f"the REPL process had exited; {_RESTARTED}"

    def _death_message(self, process: _Process) -> tuple[str, str | None]:
        """(error, limit_hit) for a process that ended in the middle of a request."""
        config = self.config
        if process.killed_for is not None:
            return process.killed_for, process.killed_for
        code = process.exit_code()
        cpu = f"cell exceeded {config.cell_cpu_seconds:g} s CPU"
        memory = f"cell exceeded the {config.memory_bytes // (1024 * 1024)} MiB memory limit"
        if code == EXIT_CPU or code == -signal.SIGXCPU:
            return cpu, cpu
        if code == EXIT_MEMORY:
            return memory, memory
        if code == -signal.SIGKILL:
            text = "the REPL process was killed by the system (CPU or memory limit)"
            return text, text
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"the REPL process crashed ({name})", None
        if code == EXIT_PROTOCOL:
            return "the REPL process stopped after a protocol error", None
        return f"the REPL process exited unexpectedly (exit code {code})", None

    def _fail(self, process: _Process, reason: str | None = None) -> CellResult:
        if reason is not None:
            process.kill(reason)
        error, limit = self._death_message(process)
        if self._stopped is not None:  # stopped on purpose: no fresh REPL for an ending execution
            return CellResult(error=error)
        note = self._replace()
        return CellResult(error=f"{error}; {note}", limit_hit=limit)

    # -- the Sandbox protocol -------------------------------------------------------------------
    def execute(self, code: str, on_call: CallHandler) -> CellResult:
        """Run one cell; calls from the cell go to `on_call(fn, args)` in this (the worker's) thread."""
        if not isinstance(code, str):
            raise TypeError("code must be a str")
        try:
            process, note = self._live_process()
        except SandboxError as exc:
            if self._closed:
                raise
            return CellResult(error=f"the REPL is not available: {exc}")
        result = self._run(process, code, on_call)
        if result.limit_hit:
            metrics.guard_tripped(metrics.sandbox_limit_guard(result.limit_hit))
        if note:
            result.stderr = f"{result.stderr}\n{note}".lstrip("\n")
        return result

    def _run(self, process: _Process, code: str, on_call: CallHandler) -> CellResult:
        config = self.config
        channel = process.channel
        try:
            channel.send({"op": "exec", "code": code}, config.startup_timeout_seconds)
        except ProtocolError:
            return CellResult(error="the cell is too large to send to the REPL")
        except (ChannelClosed, ChannelTimeout):
            return self._fail(process, None)
        cpu_start = process.cpu_seconds()
        cpu_cap = config.cell_cpu_seconds + _CPU_GRACE
        spent = 0.0
        mark = time.monotonic()
        finished = False
        try:
            while True:
                remaining = config.cell_timeout_seconds - spent - (time.monotonic() - mark)
                if remaining <= 0:
                    return self._fail(process, f"cell exceeded {config.cell_timeout_seconds:g} s wall-clock")
                try:
                    message = channel.receive(min(remaining, _WATCH_INTERVAL))
                except ChannelTimeout:
                    cpu = process.cpu_seconds()
                    if cpu is not None and cpu_start is not None and cpu - cpu_start > cpu_cap:
                        return self._fail(process, f"cell exceeded {config.cell_cpu_seconds:g} s CPU")
                    continue
                except ChannelClosed:
                    return self._fail(process)
                except ProtocolError as exc:
                    log.warning("sandbox sent an invalid frame: %s", exc)
                    return self._fail(process, "the REPL sent an invalid message")
                op = message["op"]
                if op == "result":
                    finished = True
                    return self._cell_result(message)
                if op != "call":
                    return self._fail(process, f"the REPL sent an unexpected {op!r} message")
                spent += time.monotonic() - mark
                reply = self._answer(on_call, message["fn"], message["args"])
                try:
                    channel.send_bytes(reply, config.startup_timeout_seconds)
                except (ChannelClosed, ChannelTimeout):
                    return self._fail(process)
                mark = time.monotonic()
        finally:
            if not finished and self._box[0] is process and process.alive():
                # Only an exception from on_call (e.g. KeyboardInterrupt) gets here with the
                # process mid-cell: it can no longer be trusted to be in step.
                process.kill("the cell was interrupted")

    def _cell_result(self, message: dict[str, Any]) -> CellResult:
        stdout = message["stdout"]
        if len(stdout) > self.config.max_output_chars:
            stdout = stdout[: self.config.max_output_chars]
        return CellResult(
            stdout=stdout,
            stderr=message["stderr"],
            error=message["error"],
            final=message["final"],
            limit_hit=message["limit_hit"],
        )

    def _answer(self, on_call: CallHandler, fn: str, args: dict[str, Any]) -> bytes:
        """The frame answering one call: the handler's value, or an error the cell will raise."""
        try:
            value = on_call(fn, args)
        except CallRejected as exc:
            return self._error_frame(str(exc) or "the call was rejected")
        except Exception as exc:
            log.exception("REPL call %s failed in the worker", fn)
            return self._error_frame(f"{fn} failed in the worker: {type(exc).__name__}: {exc}")
        try:
            return encode_frame({"op": "response", "value": value}, self.config.max_frame_bytes)
        except ProtocolError:
            return self._error_frame(f"the answer to {fn} is too large for the REPL")
        except (TypeError, ValueError, RecursionError):
            log.error("REPL call %s returned a value that is not JSON: %r", fn, type(value))
            return self._error_frame(f"the worker's answer to {fn} could not be sent (not JSON)")

    def _error_frame(self, message: str) -> bytes:
        return encode_frame({"op": "call_error", "message": message[:10_000]}, self.config.max_frame_bytes)

    def get_variables(self) -> tuple[dict[str, Any], list[str]]:
        """(JSON-serialisable user variables, names of the variables that are not)."""
        process, _note = self._live_process()
        config = self.config
        try:
            process.channel.send({"op": "get_variables"}, config.startup_timeout_seconds)
            deadline = time.monotonic() + config.cell_timeout_seconds
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._fail(process, "reading the REPL variables timed out")
                    raise SandboxError("reading the REPL variables timed out; " + _RESTARTED)
                try:
                    message = process.channel.receive(min(remaining, _WATCH_INTERVAL))
                except ChannelTimeout:
                    continue
                if message["op"] != "variables":
                    raise ProtocolError(f"expected variables, got {message['op']}")
                return message["variables"], message["dropped"]
        except (ChannelClosed, ChannelTimeout, ProtocolError) as exc:
            result = self._fail(process, f"reading the REPL variables failed ({exc})")
            raise SandboxError(result.error or "reading the REPL variables failed") from None

    def close(self) -> None:
        """Kill the process and close its pipes. Safe to call twice."""
        self._closed = True
        self._finalizer()


class SubprocessSandboxFactory:
    """`SandboxFactory`: every call starts a fresh REPL process with `config`."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()

    def __call__(
        self, context: Any, variables: dict[str, Any], constants: dict[str, Any]
    ) -> SubprocessSandbox:
        return SubprocessSandbox(context, variables, constants, self.config)

    def __repr__(self) -> str:
        return f"SubprocessSandboxFactory({asdict(self.config)!r})"


def _plan(config: SandboxConfig) -> IsolationPlan:
    try:
        return checked_plan(config.isolation, config.sandbox_uid, config.sandbox_gid)
    except RuntimeError as exc:  # IsolationUnavailable: SANDBOX_ISOLATION=required on this host
        raise SandboxError(str(exc)) from None


def make_sandbox_factory(config: SandboxConfig | None = None) -> SandboxFactory:
    """A factory the engine calls once per agent: `factory(context, variables, constants)`."""
    return SubprocessSandboxFactory(config)
