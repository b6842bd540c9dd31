"""No `rlm-sandbox-*` folder outlives its sandbox, however the sandbox process ends.

The review found two empty folders after ~120 hostile runs. The worker removed a sandbox's folder
when it closed or replaced the sandbox, and the sandbox removed it when the worker closed the pipe
while it sat idle; every other exit (the worker killed mid-cell, then the sandbox ending on its
CPU limit, a broken pipe, a failed call, a memory error, or the kernel's hard CPU limit) skipped
both. The folder is now deleted as soon as the process has started in it. Each exit kind below
counts the folders left in a private temporary directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from rlm_worker.sandbox import SandboxConfig, SubprocessSandbox
from tests.security.conftest import TEST_CONFIG, CountingHandler
from tests.support.services import wait_for

ROOT = Path(__file__).resolve().parents[2]

CPU_SWALLOWED = "n = 0\nwhile True:\n    try:\n        while True:\n            n += 1\n    except BaseException:\n        pass"


@pytest.fixture()
def temp_root(tmp_path, monkeypatch):
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def _sandbox_folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("rlm-sandbox-"))


def _exited(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


class Interrupt:
    def __call__(self, fn, args):
        raise KeyboardInterrupt


def _crash(box):
    os.kill(box.pid, signal.SIGSEGV)
    return box.execute("print(1)", CountingHandler())


def _stopped(box):
    os.killpg(box.group_leader, signal.SIGKILL)  # what a cancellation or the time limit does to a busy cell
    return box.execute("print(1)", CountingHandler())


def _parent_exception(box):
    with pytest.raises(KeyboardInterrupt):
        box.execute("llm_query('x')", Interrupt())


WORKER_ALIVE = {
    "cpu-swallowed": lambda box: box.execute(CPU_SWALLOWED, CountingHandler()),
    "cpu-in-c-code": lambda box: box.execute("x = sum(range(10**12))", CountingHandler()),
    "memory": lambda box: box.execute("x = 'a' * (10**10)", CountingHandler()),
    "crash": _crash,
    "stopped": _stopped,
    "parent-exception": _parent_exception,
}


@pytest.mark.parametrize("kind", list(WORKER_ALIVE))
def test_no_folder_left_when_the_worker_sees_the_exit(temp_root, kind):
    box = SubprocessSandbox("ctx", {}, {}, TEST_CONFIG)
    try:
        WORKER_ALIVE[kind](box)
    finally:
        box.close()
    assert _sandbox_folders(temp_root) == []


def test_no_folder_left_after_a_wall_clock_kill(temp_root):
    box = SubprocessSandbox("ctx", {}, {}, SandboxConfig(cell_cpu_seconds=60, cell_timeout_seconds=1.0))
    try:
        result = box.execute("x = 0\nwhile True:\n    x += 1", CountingHandler())
        assert result.limit_hit == "cell exceeded 1 s wall-clock"
    finally:
        box.close()
    assert _sandbox_folders(temp_root) == []


WORKER_KILLED = {
    "idle": "idle",
    "cpu-limit-then-broken-pipe": "while True:\n    pass",
    "cpu-signal-swallowed": CPU_SWALLOWED,
    "call-never-answered": "llm_query('x')",
    "memory-error-then-broken-pipe": "for i in range(3 * 10**7):\n    pass\nx = 'a' * (10**10)",
}


@pytest.mark.parametrize("kind", list(WORKER_KILLED))
def test_no_folder_left_when_the_worker_is_killed_mid_cell(temp_root, kind):
    worker = subprocess.run(
        [sys.executable, "-m", "tests.security.dying_worker", str(temp_root), WORKER_KILLED[kind]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == -signal.SIGKILL, worker.stderr
    pid = int(worker.stdout.split()[0])
    wait_for(lambda: _exited(pid), timeout=60, interval=0.1, what=f"the orphaned sandbox {pid} to exit")
    assert _sandbox_folders(temp_root) == []
