"""What `rlm run` and `rlm trace` print where a person reads them: a terminal, a file, a pipe."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time

from tests.cli.readme import ROOT, run_shell
from tests.cli.scripts import ship_log_responder

QUESTION = "On which dates did the ship come to anchor, and where?"
EXECUTION_ID = re.compile(r"execution ([0-9a-f]{32})")


def run_with_stderr_on_a_terminal(env: dict[str, str]) -> tuple[int, str, str]:
    """`rlm run` with stderr on a pseudo-terminal (as in a shell) and stdout captured."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        ["rlm", "run", "samples/northern_tern_log.txt", "-q", QUESTION],
        cwd=ROOT,
        env={k: v for k, v in env.items() if k != "COLUMNS"},
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    stdout = proc.stdout.read() if proc.stdout else ""
    return proc.wait(timeout=30), stdout, seen.decode(errors="replace")


def test_a_successful_run_in_a_terminal_names_its_execution_on_stderr(cli_env, scripted):
    scripted.responder = ship_log_responder

    code, stdout, terminal = run_with_stderr_on_a_terminal(cli_env)

    assert code == 0, terminal
    ids = set(EXECUTION_ID.findall(terminal))
    assert len(ids) == 1, terminal  # `rlm trace ID` can follow it
    (execution_id,) = ids
    assert f"rlm trace {execution_id}" in terminal
    assert execution_id not in stdout and "Table Bay" in stdout  # stdout stays the answer


def test_trace_into_a_file_or_a_pipe_is_not_cut_to_80_columns(cli_env, scripted, tmp_path):
    scripted.responder = ship_log_responder
    env = {k: v for k, v in cli_env.items() if k != "COLUMNS"}
    run = run_shell(f"rlm run samples/northern_tern_log.txt -q '{QUESTION}' --json", env)
    assert run.returncode == 0, run.stderr
    execution_id = json.loads(run.stdout)["id"]

    piped = run_shell(f"rlm trace {execution_id} | cat", env)
    to_file = run_shell(f"rlm trace {execution_id} > {tmp_path}/trace.txt", env)

    assert piped.returncode == 0 and to_file.returncode == 0, piped.stderr + to_file.stderr
    for text in (piped.stdout, (tmp_path / "trace.txt").read_text()):
        assert not [line for line in text.splitlines() if line.endswith("…")], text  # none cut
        assert max(len(line) for line in text.splitlines()) > 120
        assert "1 iteration " in text or "iterations" in text
        assert "model calls" in text and "model ca…" not in text
