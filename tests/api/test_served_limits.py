"""The API as deployed (gunicorn with the shipped gunicorn.conf.py) under the red team's two
denial-of-service inputs (issue 30): a 1.2 MB PDF whose streams inflate to 1.2 GB, and forty
event streams from one tenant. Both are refused while `/api/health` keeps answering."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.cli.conftest import free_port
from tests.support.documents import pdf_flate_bomb
from tests.support.services import REDIS_HOST, REDIS_PORT, ROOT, free_redis_db, migrated_database, wait_for

ALICE, BOB = "tok-alice-served-3f9a1c", "tok-bob-served-7d2e4b"
REDIS_DBS = (27, 28)  # a broker nobody consumes: executions stay queued, their streams stay open
WEB_PROCESSES = 2


class Served:
    def __init__(self, port: int, proc: subprocess.Popen) -> None:
        self.port, self.proc = port, proc

    def connection(self, timeout: float = 30) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method: str, path: str, token: str | None = None, body=None, headers=None):
        conn = self.connection()
        all_headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, data

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return [int(pid) for pid in children]


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    broker, backend = free_redis_db(REDIS_DBS)
    port = free_port()
    log_path = tmp_path_factory.mktemp("served") / "gunicorn.log"
    with migrated_database("rlm_served") as url:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": broker,
            "CELERY_RESULT_BACKEND": backend,
            "DISPATCH": "celery",
            "LLM_API_BASE": "http://127.0.0.1:9/v1",
            "DEFAULT_MODEL": "openai/scripted-root",
            "API_TOKENS": f"{ALICE},{BOB}",
            "API_RATE_LIMIT": "10000/minute",
            "SECRET_KEY": "served-tests-secret",
            "PORT": str(port),
            "WEB_CONCURRENCY": str(WEB_PROCESSES),
        }
        with open(log_path, "w+") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "rlm_api:create_app()"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

            def up() -> bool:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"gunicorn exited: {log.read()[-3000:]}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                        pass
                except urllib.error.HTTPError:
                    pass  # 503: up, with no worker to report
                return len(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()) == WEB_PROCESSES

            try:
                wait_for(up, 90, interval=0.2, what="gunicorn")
                yield Served(port, proc)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        assert REDIS_HOST and REDIS_PORT  # the broker above is the tests' private Redis


class HealthWatch(threading.Thread):
    """Asks `/api/health` every 0.1 s while something else happens; records each answer's time."""

    def __init__(self, served: Served) -> None:
        super().__init__(daemon=True)
        self.served, self.latencies, self.failures = served, [], []
        self.stop = threading.Event()

    def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                status, _ = self.served.request("GET", "/api/health")
                assert status in (200, 503), status
                self.latencies.append(time.monotonic() - started)
            except Exception as exc:  # noqa: BLE001 - a timeout is what this watches for
                self.failures.append(repr(exc))
            if self.stop.wait(0.1):
                return

    def __enter__(self) -> HealthWatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(timeout=40)


def multipart(field: str, filename: str, data: bytes, fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: application/pdf\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_the_pdf_bomb_is_refused_in_seconds_while_health_answers(served):
    bomb = pdf_flate_bomb(pages=20, inflated_bytes=60_000_000)  # ~1.2 MB, 1.2 GB inflated
    body, content_type = multipart("context", "bomb.pdf", bomb, {"name": "bomb"})
    with HealthWatch(served) as health:
        started = time.monotonic()
        status, data = served.request(
            "POST", "/api/sessions", ALICE, body=body, headers={"Content-Type": content_type}
        )
        took = time.monotonic() - started
    error = json.loads(data)["error"]
    assert status == 413 and error["code"] == "input_too_large", (status, error)
    assert "INPUT_MAX_BYTES" in error["message"]
    assert took < 15, took
    assert not health.failures and health.latencies and max(health.latencies) < 5, health.__dict__
    peaks = [peak_rss_mb(pid) for pid in served.worker_pids()]
    assert max(peaks) < 400, peaks  # the red team saw 3.3 GB


def _open_stream(served: Served, token: str, execution_id: str, opened: list, refused: list) -> None:
    conn = served.connection(timeout=30)
    conn.request("GET", f"/api/executions/{execution_id}/events", headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    if response.status == 200:
        opened.append(conn)  # kept open: the stream holds its thread until closed
    else:
        refused.append((response.status, json.loads(response.read())["error"]["code"]))
        conn.close()


def test_forty_streams_from_one_tenant_are_capped_and_starve_no_one(served):
    status, data = served.request(
        "POST", "/api/execute", ALICE, body=json.dumps({"user_query": "q", "context": "c"}),
        headers={"Content-Type": "application/json"},
    )
    assert status == 202, data
    execution_id = json.loads(data)["id"]
    opened: list = []
    refused: list = []
    try:
        with HealthWatch(served) as health:
            threads = [
                threading.Thread(target=_open_stream, args=(served, ALICE, execution_id, opened, refused))
                for _ in range(40)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            # with Alice's streams open, another tenant is served: a short request and a stream
            status, _ = served.request("GET", "/api/executions", BOB)
            assert status == 200
            status, data = served.request(
                "POST", "/api/execute", BOB, body=json.dumps({"user_query": "q", "context": "c"}),
                headers={"Content-Type": "application/json"},
            )
            bob_opened: list = []
            _open_stream(served, BOB, json.loads(data)["id"], bob_opened, [])
            assert len(bob_opened) == 1
            bob_opened[0].close()
        assert len(opened) == 3, (len(opened), refused[:3])  # API_MAX_STREAMS_PER_TOKEN, over both processes
        assert len(opened) + len(refused) == 40
        assert {r for r in refused} == {(429, "too_many_streams")}
        assert not health.failures and health.latencies and max(health.latencies) < 5, health.__dict__
    finally:
        for conn in opened:
            conn.close()
    # closed streams give their slots back: Alice may stream again
    def again() -> bool:
        retry: list = []
        _open_stream(served, ALICE, execution_id, retry, [])
        for conn in retry:
            conn.close()
        return bool(retry)

    wait_for(again, 20, interval=0.5, what="a slot given back")
