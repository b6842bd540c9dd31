"""Resource attacks: CPU, wall clock, memory, recursion, forks, output floods, call floods, and a
sandbox process that misbehaves on the pipe. The worker must survive each one and the same
factory must then run a normal cell."""

from __future__ import annotations

import os
import signal
import stat
import time
from dataclasses import replace

import pytest

from rlm_worker.sandbox import SandboxConfig, SubprocessSandbox, make_sandbox_factory
from rlm_worker.sandbox.process import SandboxError
from rlm_worker.sandbox.protocol import (
    ChannelClosed,
    ChannelTimeout,
    ProtocolError,
    WorkerChannel,
    validate_child_message,
)
from tests.security.conftest import TEST_CONFIG, CountingHandler, assert_no_leak, assert_still_works

CPU = "cell exceeded 1 s CPU"
RESTARTED = "the REPL was restarted; variables were lost"


@pytest.fixture()
def box(factory):
    sandbox = factory("ctx", {}, {})
    yield sandbox
    sandbox.close()


def test_infinite_loop_hits_the_cpu_limit_and_keeps_the_variables(box):
    box.execute("kept = 'yes'", CountingHandler())
    started = time.monotonic()
    result = box.execute("while True:\n    pass", CountingHandler())
    assert result.limit_hit == CPU and result.error == CPU
    assert time.monotonic() - started < 15
    assert box.execute("print(kept)", CountingHandler()).stdout == "yes\n"  # handled in-process
    assert_still_works(box)


def test_loop_that_swallows_the_cpu_signal_is_killed(box):
    code = "n = 0\nwhile True:\n    try:\n        while True:\n            n += 1\n    except BaseException:\n        pass"
    result = box.execute(code, CountingHandler())
    assert result.limit_hit is not None and "CPU" in result.limit_hit
    assert RESTARTED in result.error
    assert_still_works(box)


def test_cpu_burnt_in_c_code_is_stopped_by_the_worker(box):
    result = box.execute("x = sum(range(10**12))", CountingHandler())  # one C call, no signal checks
    assert result.limit_hit == CPU
    assert RESTARTED in result.error
    assert_still_works(box)


def test_busy_wait_hits_the_wall_clock(factory):
    slow = SubprocessSandbox("ctx", {}, {}, SandboxConfig(cell_cpu_seconds=60, cell_timeout_seconds=1.5))
    try:
        started = time.monotonic()
        result = slow.execute("x = 0\nwhile True:\n    x += 1", CountingHandler())
        assert result.limit_hit == "cell exceeded 1.5 s wall-clock"
        assert RESTARTED in result.error
        assert time.monotonic() - started < 10
        assert_still_works(slow)
    finally:
        slow.close()
    assert_still_works(factory("ctx", {}, {}))


def test_execution_cpu_budget(factory):
    small = SubprocessSandbox("ctx", {}, {}, SandboxConfig(cell_cpu_seconds=1, execution_cpu_seconds=1))
    try:
        first = small.execute("while True:\n    pass", CountingHandler())
        assert first.limit_hit == "the execution used up its 1 s of REPL CPU time"
        second = small.execute("print(1)", CountingHandler())
        assert second.limit_hit == "the execution used up its 1 s of REPL CPU time"
        assert second.stdout == ""
    finally:
        small.close()


@pytest.fixture(scope="module")
def memory_box():
    """Filling 512 MiB takes more than one CPU second on a busy machine: a roomier CPU limit."""
    sandbox = SubprocessSandbox(
        "ctx", {}, {}, replace(TEST_CONFIG, cell_cpu_seconds=20, cell_timeout_seconds=60)
    )
    yield sandbox
    sandbox.close()


@pytest.mark.parametrize(
    "code",
    [
        "x = 'x' * 10**10",
        "blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 1024 * 1024))",
        "x = [0] * (10**9)",
    ],
    ids=["string", "growing-list", "big-list"],
)
def test_memory_bombs_hit_the_memory_limit(memory_box, code):
    box = memory_box
    result = box.execute(code, CountingHandler())
    assert result.limit_hit == "cell exceeded the 512 MiB memory limit"
    assert result.error.startswith("cell exceeded the 512 MiB memory limit")
    box.execute("blocks = None", CountingHandler())
    assert_still_works(box)


def test_deep_recursion_is_an_ordinary_error(box):
    result = box.execute("def f(n):\n    return f(n + 1)\nf(0)", CountingHandler())
    assert "RecursionError" in result.error and result.limit_hit is None
    nested = box.execute(
        "a = []\nfor i in range(200000):\n    a = [a]\nprint(len(str(a)))", CountingHandler()
    )
    assert "RecursionError" in nested.error
    assert_still_works(box)


def test_fork_is_impossible(box):
    result = box.execute("import os\nos.fork()", CountingHandler())
    assert "import of 'os' is not allowed" in result.error
    result = box.execute("import multiprocessing\nmultiprocessing.Process()", CountingHandler())
    assert "import of 'multiprocessing' is not allowed" in result.error
    leader = box.group_leader
    group = {p for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == leader}
    # Nothing else runs in the sandbox's process group: the REPL, and bubblewrap and its PID 1
    # when jailed.
    assert group == ({str(leader), str(box.pid), str(box.pid - 1)} if box.jailed else {str(leader)})
    assert_still_works(box)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def test_huge_output_is_capped(box):
    started = time.monotonic()
    result = box.execute("for i in range(200000):\n    print('x' * 100)\nprint('end')", CountingHandler())
    assert len(result.stdout) == TEST_CONFIG.max_output_chars
    assert (
        result.limit_hit
        == f"cell output exceeded {TEST_CONFIG.max_output_chars} characters; the rest was dropped"
    )
    assert "end" not in result.stdout
    assert time.monotonic() - started < 15
    one_print = box.execute("print('y' * 10**7)", CountingHandler())
    assert len(one_print.stdout) == TEST_CONFIG.max_output_chars
    assert_still_works(box)


def test_a_million_sub_calls_end_within_limits(box):
    handler = CountingHandler("r")
    started = time.monotonic()
    result = box.execute("for i in range(10**6):\n    llm_query('q')", handler)
    assert handler.count > 1000
    assert handler.count < 10**6 or result.error is None
    assert result.limit_hit is None or "CPU" in result.limit_hit
    assert time.monotonic() - started < 60
    assert_still_works(box)


def test_handler_rejecting_a_flood_stops_the_loop(box):
    calls = []

    def guard(fn, args):
        calls.append(fn)
        if len(calls) > 100:
            from rlm_worker.engine.ports import CallRejected

            raise CallRejected("sub-call guard tripped")
        return "ok"

    result = box.execute("for i in range(10**6):\n    llm_query('q')", guard)
    assert "RuntimeError: sub-call guard tripped" in result.error
    assert len(calls) == 101


def test_process_killed_mid_cell_is_replaced(box):
    def kill_it(fn, args):
        os.kill(box.pid, signal.SIGKILL)
        time.sleep(0.1)
        return "never delivered"

    result = box.execute("llm_query('x')", kill_it)
    assert RESTARTED in result.error
    assert_still_works(box)


def test_secrets_do_not_leak_through_resource_errors(box):
    for code in ("while True:\n    pass", "x = 'x' * 10**10", "1/0"):
        assert_no_leak(box.execute(code, CountingHandler()))
    assert_no_leak(box.execute("print(1)", CountingHandler()), box.get_variables()[0])


# -- a sandbox process that speaks garbage or nothing: the worker must not hang or die -----------


def _fake_python(tmp_path, body: str) -> str:
    script = tmp_path / "fake-python"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


@pytest.mark.parametrize(
    "body, expected",
    [
        ("printf 'garbage, not a frame'; sleep 30", "frame of"),
        ("printf '\\000\\000\\000\\005{oops'; sleep 30", "not valid JSON"),
        ('printf \'\\000\\000\\000\\015{"op":"evil"}\'; sleep 30', "unknown op"),
        ("sleep 30", "no message from the sandbox in time"),
        ("exit 3", "could not start the REPL process"),
    ],
    ids=["garbage", "bad-json", "unknown-op", "silent", "exits"],
)
def test_misbehaving_process_cannot_hang_the_worker(tmp_path, body, expected):
    config = SandboxConfig(python_executable=_fake_python(tmp_path, body), startup_timeout_seconds=1.5)
    started = time.monotonic()
    with pytest.raises(SandboxError) as info:
        make_sandbox_factory(config)("ctx", {}, {})
    assert expected in str(info.value)
    assert time.monotonic() - started < 10


def test_worker_channel_rejects_bad_frames():
    read_fd, write_fd = os.pipe()
    spare_read, spare_write = os.pipe()
    channel = WorkerChannel(read_fd, spare_write, max_frame_bytes=1024)
    try:
        os.write(write_fd, (10**6).to_bytes(4, "big"))
        with pytest.raises(ProtocolError):
            channel.receive(1)
        with pytest.raises(ChannelTimeout):
            WorkerChannel(spare_read, spare_write).receive(0.05)
        os.close(write_fd)
        write_fd = -1
        with pytest.raises((ChannelClosed, ProtocolError)):
            channel.receive(1)
    finally:
        for fd in (read_fd, write_fd, spare_read, spare_write):
            if fd >= 0:
                os.close(fd)


@pytest.mark.parametrize(
    "message",
    [
        {"op": "call", "fn": "os.system", "args": {}},
        {"op": "call", "fn": "llm_query", "args": []},
        {"op": "call", "fn": "llm_query", "args": {}, "extra": 1},
        {"op": "result", "stdout": 1, "stderr": "", "error": None, "final": None, "limit_hit": None},
        {"op": "result", "stdout": "", "stderr": "", "error": None, "final": None},
        {"op": "variables", "variables": {}, "dropped": [1]},
        {"op": "ready", "pid": True},
        {"op": "__import__"},
    ],
)
def test_child_messages_are_validated(message):
    with pytest.raises(ProtocolError):
        validate_child_message(message)
