"""The deployment's processes, started for real: Flower behind auth, workers on their queues, the
Procfile's release and web commands, JSON logs from each."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
from celery import Celery

from tests.cli.conftest import free_port
from tests.cli.readme import ROOT, readme_command, run_shell
from tests.support.services import REDIS_HOST, REDIS_PORT, stop_process_group, wait_for

# Redis databases of these tests only (the shared fixtures use 13 and 14).
BROKER_DB, BACKEND_DB = 9, 10


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


class Process:
    """A shell command in its own process group, its output in a file."""

    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text()

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"process exited {self.proc.returncode}: {self.output()[-3000:]}")

    def stop(self) -> None:
        stop_process_group(self.proc)
        self._log.close()


def http_status(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


@pytest.fixture()
def broker_env(cli_env) -> dict[str, str]:
    for db in (BROKER_DB, BACKEND_DB):
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()
    return {
        **cli_env,
        "CELERY_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}",
        "CELERY_RESULT_BACKEND": f"redis://{REDIS_HOST}:{REDIS_PORT}/{BACKEND_DB}",
        "LOG_FORMAT": "json",
    }


def test_flower_refuses_to_run_open(cli_env):
    env = {k: v for k, v in cli_env.items() if k != "FLOWER_BASIC_AUTH"}
    refused = run_shell("rlm flower", env)
    assert refused.returncode == 2 and "refusing to start Flower without credentials" in refused.stderr
    wide = run_shell("rlm flower --insecure-local --address 0.0.0.0", env)
    assert wide.returncode == 2 and "loopback" in wide.stderr
    empty = run_shell("rlm flower --basic-auth admin:", env)
    assert empty.returncode == 2 and "user:password" in empty.stderr


@pytest.mark.parametrize(
    "how, credentials, problem",
    [
        ("flag", "admin:x", "user 'admin' has only 1 character;"),
        ("env", "ops:short-pw-123456", "user 'ops' has only 15 characters;"),
        ("env", "a:" + "p" * 16 + ",b:tiny-pw-42", "user 'b' has only 10 characters;"),
    ],
    ids=["one-character", "fifteen", "second-user"],
)
def test_flower_refuses_short_passwords(cli_env, how, credentials, problem):
    if how == "flag":
        refused = run_shell(f"rlm flower --basic-auth '{credentials}'", cli_env)
    else:
        refused = run_shell("rlm flower", {**cli_env, "FLOWER_BASIC_AUTH": credentials})
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"the password of {problem} use at least 16" in refused.stderr
    for password in (pair.split(":", 1)[1] for pair in credentials.split(",")):
        assert len(password) == 1 or password not in refused.stderr  # never echoed


def test_flower_from_the_readme_demands_its_password(broker_env, tmp_path):
    port = free_port()
    command = readme_command("FLOWER_BASIC_AUTH=")
    user_password = command.split()[0].split("=", 1)[1]
    flower = Process(command, {**broker_env, "FLOWER_PORT": str(port)}, tmp_path / "flower.log")
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            flower.check_alive()
            return http_status(f"{base}/api/workers", user_password) == 200

        wait_for(up, 60, interval=0.2, what="flower")
        assert http_status(f"{base}/api/workers") == 401
        assert http_status(f"{base}/api/workers", "admin:wrong") == 401
        assert http_status(f"{base}/") == 401
        assert http_status(f"{base}/api/workers", user_password) == 200
        # What the compose healthcheck runs: alive, without handing the probe a password.
        assert run_shell(f"rlm healthcheck {base}/healthcheck", broker_env).returncode == 0
        # The password reached Flower through the environment, never a command line `ps` shows.
        password = user_password.split(":", 1)[1]
        for pid in _group_members(flower.proc.pid):
            if pid != flower.proc.pid:  # the README's own shell line carries it, as typed
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                assert password.encode() not in cmdline
    finally:
        flower.stop()


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    members.append(int(entry))
            except ProcessLookupError:
                pass
    return members


def test_readme_workers_serve_their_queues_and_log_json(broker_env, pg_database_url, tmp_path):
    env = {**broker_env, "DATABASE_URL": pg_database_url}
    llm = Process(readme_command("rlm worker llm"), env, tmp_path / "llm.log")
    root = Process(readme_command("rlm worker root"), env, tmp_path / "root.log")
    control = Celery(broker=env["CELERY_BROKER_URL"], backend=env["CELERY_RESULT_BACKEND"])
    host = socket.gethostname()
    try:

        def both_answer() -> bool:
            llm.check_alive()
            root.check_alive()
            replies = control.control.ping(destination=[f"llm@{host}", f"root@{host}"], timeout=0.5)
            return len(replies) == 2

        wait_for(both_answer, 90, interval=0.3, what="rlm workers")
        inspect = control.control.inspect(destination=[f"llm@{host}", f"root@{host}"], timeout=2)
        queues = {name: [q["name"] for q in qs] for name, qs in inspect.active_queues().items()}
        assert queues == {f"llm@{host}": ["rlm.llm"], f"root@{host}": ["rlm.root"]}
        stats = inspect.stats()
        assert stats[f"llm@{host}"]["pool"]["max-concurrency"] == 64
        assert stats[f"root@{host}"]["pool"]["max-concurrency"] == 4
        assert stats[f"llm@{host}"]["pool"]["implementation"] == "celery.concurrency.thread:TaskPool"
    finally:
        llm.stop()
        root.stop()
        control.close()
    events = json_lines(llm.output())
    assert any(e.get("logger", "").startswith("celery") for e in events), llm.output()[-2000:]
    assert all({"time", "level", "logger", "message", "execution_id", "node_id"} <= e.keys() for e in events)


def test_procfile_release_and_web_run_and_log_json(cli_env, tmp_path):
    commands = procfile()
    assert set(commands) == {"release", "web", "root", "llm", "flower"}
    port = free_port()
    env = {
        **cli_env,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
    }

    release = run_shell(commands["release"], env)
    assert release.returncode == 0, release.stderr
    assert "is at the newest schema" in release.stdout

    web = Process(commands["web"], {**env, "LOG_FORMAT": "json"}, tmp_path / "web.log")
    try:

        def up() -> bool:
            web.check_alive()
            return http_status(f"http://127.0.0.1:{port}/executions") == 200

        wait_for(up, 60, interval=0.2, what="gunicorn")
        probe = run_shell(f"rlm healthcheck http://127.0.0.1:{port}/executions", env)
        assert probe.returncode == 0, probe.stderr
    finally:
        web.stop()
    events = json_lines(web.output())
    assert any(e["logger"] == "gunicorn.error" and "Booting worker" in e["message"] for e in events), (
        web.output()
    )
    down = run_shell(f"rlm healthcheck http://127.0.0.1:{port}/executions --timeout 2", env)
    assert down.returncode == 1
