"""Every guard holds while sub-calls are in flight, in `rlm run` and `rlm serve` as real processes.

The scripted model answers two calls of a batch at once and the other two after SLOW seconds, so
each stop below happens with model calls under way (on a loaded machine the first answers can take
minutes: litellm's import is part of them, hence the long waits for the batch to be in flight). After each, the execution's record, its trace (what the dashboard and
`rlm trace` read) and the processes agree: one reason, finished calls counted, no call left
`running`, and no REPL process or zombie left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.cli.conftest import free_port
from tests.cli.readme import ROOT
from tests.support.scripted_model import user_text
from tests.support.services import wait_for

SLOW = 30.0  # seconds a slow sub-call takes: far longer than any stop may
LIMIT = 8  # EXECUTION_TIMEOUT of the time-limit test
BATCH_PROGRAM = 'FINAL("\\n".join(llm_query_batched(["fast one", "fast two", "slow 1", "slow 2"])))\n'


def slow_unless_fast(request: dict) -> str:
    """Sub-calls whose prompt starts with "fast" answer at once, the others after SLOW seconds."""
    text = user_text(request)
    if not text.startswith("fast"):
        time.sleep(SLOW)
    return f"answer to {text}"


STARTED: list[subprocess.Popen] = []


def rlm(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = open(log, "w+")  # noqa: SIM115 - the process owns it; read back with read_log
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlm_api.cli", *args], cwd=ROOT, env=env, stdout=handle, stderr=handle
    )
    STARTED.append(proc)
    return proc


@pytest.fixture(autouse=True)
def no_process_outlives_its_test():
    """A failed test must not leave its `rlm` process (and its REPL) running into the next one."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            repls = sandboxes_of(proc.pid)
            proc.kill()
            proc.wait(timeout=10)
            for pid in repls:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def read_log(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")


def database(env: dict[str, str]) -> Path:
    return Path(env["XDG_DATA_HOME"]) / "rlm-engine" / "rlm.db"


def query(env: dict[str, str], sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(database(env), timeout=10) as conn:
        return conn.execute(sql, args).fetchall()


def call_statuses(env: dict[str, str]) -> dict[str, int]:
    return dict(
        query(env, "SELECT status, count(*) FROM trace_nodes WHERE kind = 'llm_call' GROUP BY status")
    )


def batch_in_flight(env: dict[str, str]) -> bool:
    """The fast calls answered and the slow ones are running."""
    try:
        return call_statuses(env) == {"succeeded": 2, "running": 2}
    except sqlite3.OperationalError:  # the database is not made yet
        return False


def children(pid: int) -> dict[int, tuple[str, bytes]]:
    """pid -> (state, command line) of the children of `pid` (psutil is not a dependency: /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found[int(stat.parent.name)] = (fields[0], cmdline)
    return found


def sandboxes_of(pid: int) -> list[int]:
    return [child for child, (_, cmd) in children(pid).items() if b"rlm_worker.sandbox.child" in cmd]


def alive(pid: int) -> bool:
    """Running, and not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def assert_one_reason_and_calls_counted(
    env: dict[str, str], status: str, reason: str, fast_answered: bool = True
) -> None:
    """The record and the trace say the same thing; answered calls stay answered and are counted,
    the slow ones are cancelled, none is left running."""
    ((execution_status, error, model_calls),) = query(env, "SELECT status, error, llm_calls FROM executions")
    assert execution_status == status and reason in error, (execution_status, error)
    ((root_status, root_error),) = query(env, "SELECT status, error FROM trace_nodes WHERE kind = 'root'")
    assert root_status == status and root_error == error
    statuses = call_statuses(env)
    if fast_answered:
        assert statuses == {"succeeded": 2, "cancelled": 2}
    else:  # a loaded machine may not even have answered the fast ones in time
        assert set(statuses) <= {"succeeded", "cancelled"} and statuses["cancelled"] >= 2, statuses
    assert model_calls == statuses.get("succeeded", 0)
    cancelled = query(env, "SELECT error FROM trace_nodes WHERE kind = 'llm_call' AND status = 'cancelled'")
    assert all(e.startswith("sub-call cancelled:") for (e,) in cancelled)
    assert not query(env, "SELECT id FROM trace_nodes WHERE status = 'running'")
    # The cut-short cell says what stopped it; its traceback is kept with its stderr.
    ((code_status, code_error, code_stderr),) = query(
        env, "SELECT status, error, stderr FROM trace_nodes WHERE kind = 'code'"
    )
    assert code_status == status and code_error.startswith("stopped by guard"), code_error
    assert "Traceback" not in code_error and "Traceback" in code_stderr


@pytest.fixture()
def slow_model(scripted):
    scripted.responder = slow_unless_fast
    return scripted


def start_run(cli_env, tmp_path, env_extra: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
    program = tmp_path / "root.py"
    program.write_text(BATCH_PROGRAM)
    log = tmp_path / "run.log"
    env = {**cli_env, **(env_extra or {})}
    proc = rlm(
        "run", "samples/northern_tern_log.txt", "-q", "Q", "--root-code", str(program), env=env, log=log
    )
    wait_for(lambda: batch_in_flight(cli_env) or proc.poll() is not None, 300, what="the batch in flight")
    assert proc.poll() is None, read_log(log)
    return proc, log


def test_ctrl_c_stops_rlm_run_within_two_seconds_and_records_it_cancelled(cli_env, slow_model, tmp_path):
    proc, log = start_run(cli_env, tmp_path)
    repls = sandboxes_of(proc.pid)
    assert repls, "the root program runs in a REPL process"

    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    code = proc.wait(timeout=15)
    took = time.monotonic() - started

    output = read_log(log)
    assert code == 130, output
    assert took < 2.0, f"stopped after {took:.2f} s"
    assert "Traceback" not in output
    assert_one_reason_and_calls_counted(cli_env, "cancelled", "interrupted from the terminal (Ctrl-C)")
    assert not [pid for pid in repls if alive(pid)], "a REPL process outlived rlm run"
    # The last progress line counts what finished, and the cancelled calls apart (not as done).
    last = [line for line in output.splitlines() if line.startswith("[rlm] cancelled")][-1]
    assert "sub-calls 2/4 (2 cancelled)" in last, last


def test_a_second_ctrl_c_exits_at_once_without_a_traceback(cli_env, slow_model, tmp_path):
    proc, log = start_run(cli_env, tmp_path)
    repls = sandboxes_of(proc.pid)

    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    code = proc.wait(timeout=15)

    output = read_log(log)
    assert code == 130 and time.monotonic() - started < 1.0, output
    assert "Traceback" not in output and "threading" not in output
    assert not [pid for pid in repls if alive(pid)]


def test_the_time_limit_ends_rlm_run_while_calls_are_in_flight(cli_env, slow_model, tmp_path):
    program = tmp_path / "root.py"
    program.write_text(BATCH_PROGRAM)
    log = tmp_path / "run.log"
    env = {**cli_env, "EXECUTION_TIMEOUT": str(LIMIT)}
    proc = rlm(
        "run", "samples/northern_tern_log.txt", "-q", "Q", "--root-code", str(program), env=env, log=log
    )
    code = proc.wait(timeout=120)

    output = read_log(log)
    assert code == 1 and "timed_out" in output, output
    ((began, ended),) = query(cli_env, "SELECT started_at, finished_at FROM executions")
    assert _seconds(ended) - _seconds(began) < LIMIT + 5  # from the execution's start, not the process's
    assert_one_reason_and_calls_counted(
        cli_env, "timed_out", f"exceeded its {LIMIT} s time limit", fast_answered=False
    )


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


@pytest.fixture()
def serve(cli_env, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    proc = rlm("serve", "--port", str(port), env=cli_env, log=log)

    def up() -> bool:
        assert proc.poll() is None, read_log(log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
            return r.status in (200, 503)

    wait_for(up, 90, interval=0.1, what="rlm serve")
    yield proc, port, log
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def post(port: int, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body or {}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def submit_batch(port: int) -> str:
    return post(port, "/api/execute", {"user_query": "Q", "context": "text", "root_code": BATCH_PROGRAM})[
        "execution_id"
    ]


def test_cancel_through_rlm_serve_stops_within_five_seconds(cli_env, slow_model, serve):
    proc, port, log = serve
    submit_batch(port)
    wait_for(lambda: batch_in_flight(cli_env), 300, what="the batch in flight")

    (execution_id,) = query(cli_env, "SELECT id FROM executions")[0]
    post(port, f"/api/executions/{execution_id}/cancel")
    wait_for(
        lambda: not query(cli_env, "SELECT id FROM trace_nodes WHERE status = 'running'"), 5, what="stop"
    )

    ((error,),) = query(cli_env, "SELECT error FROM executions")
    # The run stores its outcome just after its last node stops, and with it writes the record's
    # reason onto the root node: wait for that, then everything must agree.
    wait_for(
        lambda: query(cli_env, "SELECT error FROM trace_nodes WHERE kind = 'root'") == [(error,)],
        5,
        what="the root node to carry the record's reason",
    )
    assert_one_reason_and_calls_counted(cli_env, "cancelled", error)
    wait_for(lambda: not sandboxes_of(proc.pid), 5, what="the REPL process to end")
    assert all(state != "Z" for state, _ in children(proc.pid).values()), children(proc.pid)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_rlm_serve_stops_on_the_first_signal_within_five_seconds(cli_env, slow_model, serve, signum):
    proc, port, log = serve
    submit_batch(port)
    wait_for(lambda: batch_in_flight(cli_env), 300, what="the batch in flight")
    repls = sandboxes_of(proc.pid)

    proc.send_signal(signum)
    started = time.monotonic()
    proc.wait(timeout=20)

    assert time.monotonic() - started < 5.0, read_log(log)
    assert "Traceback" not in read_log(log)
    assert_one_reason_and_calls_counted(cli_env, "cancelled", "the server was stopped")
    assert not [pid for pid in repls if alive(pid)]
