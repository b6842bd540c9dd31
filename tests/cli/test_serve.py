"""`rlm serve` as a subprocess, driven over HTTP with the README's curl commands."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

import pytest

from tests.cli.conftest import free_port
from tests.cli.readme import ROOT, readme_command, run_shell
from tests.cli.scripts import program_responder
from tests.support.services import wait_for


@pytest.fixture()
def served(cli_env, tmp_path):
    """The README's `rlm serve`, on a free port (through PORT, which it reads)."""
    port = free_port()
    log = open(tmp_path / "serve.log", "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {readme_command('rlm serve')}"],
        cwd=ROOT,
        env={**cli_env, "PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def up() -> bool:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"rlm serve exited: {log.read()[-3000:]}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/executions", timeout=2) as r:
            return r.status == 200

    try:
        wait_for(up, 60, interval=0.1, what="rlm serve")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def curl(command: str, port: int, env: dict[str, str], **ids: str) -> dict:
    command = command.replace("localhost:8000", f"127.0.0.1:{port}")
    for name, value in ids.items():
        command = command.replace(f"<{name.replace('_', ' ')}>", value)
    done = run_shell(command, env, timeout=90)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_serve_runs_the_readme_api_walkthrough(served, cli_env, scripted):
    scripted.responder = program_responder(
        'FINAL(llm_query("Where did the ship come to anchor? " + context))', sub="Table Bay, Cape Town"
    )
    session = curl(readme_command("curl -s -X POST localhost:8000/api/sessions"), served, cli_env)
    assert session["name"] == "voyage" and session["context_size"] > 0

    result = curl(
        readme_command("curl -s -X POST localhost:8000/api/execute"),
        served,
        cli_env,
        session_id=session["id"],
    )
    assert result["status"] == "succeeded", result
    assert result["final_answer"] == "Table Bay, Cape Town"
    execution_id = result["id"]

    again = curl(
        readme_command("curl -s localhost:8000/api/executions/<execution id>"),
        served,
        cli_env,
        execution_id=execution_id,
    )
    assert again["id"] == execution_id and again["session_id"] == session["id"]
    nodes = curl(
        readme_command("curl -s localhost:8000/api/executions/<execution id>/trace"),
        served,
        cli_env,
        execution_id=execution_id,
    )["nodes"]
    assert [n["kind"] for n in nodes].count("llm_call") == 1
    assert scripted.stats()["by_model"] == {"scripted-root": 1, "scripted-sub": 1}

    with urllib.request.urlopen(f"http://127.0.0.1:{served}/executions/{execution_id}", timeout=10) as page:
        assert "Table Bay, Cape Town" in page.read().decode()

    health = run_shell(
        readme_command("curl -s localhost:8000/api/health").replace("localhost:8000", f"127.0.0.1:{served}"),
        cli_env,
    )
    assert health.returncode == 0
    json.loads(health.stdout)  # the API answers its health check in JSON


def test_a_redirected_log_has_no_terminal_colours(served, tmp_path):
    """werkzeug colours a 404's request line; `rlm serve > serve.log` must hold plain text."""
    for path in ("/no/such/page", "/executions"):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{served}{path}", timeout=10).close()
        except urllib.error.HTTPError:
            pass

    def logged() -> str:
        text = (tmp_path / "serve.log").read_text(errors="replace")
        return text if "GET /no/such/page" in text and "GET /executions" in text else ""

    text = wait_for(logged, 30, what="the request lines in serve.log")
    assert "\x1b[" not in text, repr(text[-500:])
