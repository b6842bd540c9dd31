"""How the foreground commands (`rlm run`, `rlm serve`) end on Ctrl-C or SIGTERM.

The first signal starts an orderly stop on a thread of its own (a signal handler must not wait
on the database or on other threads): the command's executions are recorded `cancelled` and
stop through the ordinary cancel path. If that has not finished within the grace period, or a
second signal comes, the process ends at once: the REPL processes it started are killed first
(they run in sessions of their own, so the terminal's Ctrl-C never reached them), then
`os._exit`, which no blocked thread can hold up and which prints no traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

#: The exit code of a command ended by a signal: 128 + the signal's number (130 for Ctrl-C).
EXIT_BY_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


def child_pids(pid: int | None = None) -> list[int]:
    """The live children of `pid` (this process by default), read from /proc (Linux)."""
    pid = os.getpid() if pid is None else pid
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            data = entry.read_bytes()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != b"Z":
            found.append(int(entry.parent.name))
    return found


def kill_children() -> None:
    """SIGKILL every child's process group (a REPL and anything it started) and reap them."""
    for child in child_pids():
        for kill in (os.killpg, os.kill):
            try:
                kill(child, signal.SIGKILL)
                break
            except (ProcessLookupError, PermissionError):
                continue
        try:
            os.waitpid(child, 0)
        except ChildProcessError:
            pass


def exit_now(code: int) -> None:
    """End the process at once, children first; no thread can hold it up, nothing is printed."""
    kill_children()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


class SignalStop:
    """Turns the first SIGINT/SIGTERM into `on_first(signum)`, run on a thread; a second signal,
    or `grace` seconds without `finished()` being called, ends the process at once."""

    def __init__(self, on_first: Callable[[int], None], grace: float, notice: str) -> None:
        self.on_first, self.grace, self.notice = on_first, grace, notice
        self.signum: int | None = None
        self._finished = threading.Event()
        self._deadline = 0.0

    def install(self) -> SignalStop:
        for signum in EXIT_BY_SIGNAL:
            signal.signal(signum, self._handle)
        return self

    @property
    def exit_code(self) -> int | None:
        """What the process should exit with if a signal stopped it."""
        return EXIT_BY_SIGNAL.get(signal.Signals(self.signum)) if self.signum else None

    def finished(self) -> None:
        """The orderly stop is over: the caller exits by itself."""
        self._finished.set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            os.write(2, b"rlm: stopped at once\n")
            exit_now(EXIT_BY_SIGNAL.get(signal.Signals(signum), 1))
        self.signum = signum
        self._deadline = time.monotonic() + self.grace
        os.write(2, (self.notice + "\n").encode())
        threading.Thread(target=self._stop, name="rlm-signal-stop", daemon=True).start()

    def _stop(self) -> None:
        assert self.signum is not None
        try:
            self.on_first(self.signum)
        finally:
            if not self._finished.wait(max(0.0, self._deadline - time.monotonic())):
                os.write(2, b"rlm: did not stop in time; stopped at once\n")
                exit_now(self.exit_code or 1)
