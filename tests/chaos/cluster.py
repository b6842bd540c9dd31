"""A private cluster for fault tests: its own Redis and Postgres processes, workers we may kill.

Faults are real: `kill -9` of a worker's whole process group (main process and pool), a Redis
killed and started again on the same port, a Postgres stopped in immediate mode and restarted.
The shared services of the rest of the suite are never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import psycopg
import redis

from rlm_api.database import db
from rlm_shared.models import Execution
from tests.support.services import CeleryWorker, upgrade_database, wait_for

PG_BIN = Path(os.environ.get("TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
FINISHED = ("succeeded", "failed", "timed_out", "cancelled")

#: Short timings so that recovery happens in seconds (production defaults are in config.py).
FAST_RECOVERY_ENV = {
    "LEASE_SECONDS": "4",
    "REAPER_INTERVAL": "1",
    "SUBCALL_REDISPATCH_SECONDS": "5",
    "BROKER_VISIBILITY_TIMEOUT": "15",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """`redis-server` on a free port with no persistence: a restart loses every queued message."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.log_path = workdir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> PrivateRedis:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        wait_for(client.ping, 20, what=f"redis on port {self.port}")
        return self

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, no data kept."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.kill()
        self.start()

    def flush(self) -> None:
        redis.Redis(port=self.port).flushall()


class PrivatePostgres:
    """A throwaway Postgres cluster (initdb as the `postgres` user, trust auth) on a free port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.datadir = workdir / "pgdata"
        self.sockdir = workdir / "pgsock"
        self.log_path = workdir / "postgres.log"

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True)

    def init(self) -> PrivatePostgres:
        for path in (self.datadir, self.sockdir):
            path.mkdir(parents=True, exist_ok=True)
            shutil.chown(path, "postgres", "postgres")
        self.log_path.touch()
        shutil.chown(self.log_path, "postgres", "postgres")
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.datadir), "-U", "postgres", "-A", "trust", "-N"
        )
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-l",
            str(self.log_path),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash as the clients see it: every connection is cut."""
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"
        upgrade_database(url)
        return url


def make_workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="rlm-chaos-"))
    path.chmod(0o755)
    return path


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class Workers:
    """Celery worker processes of one test; every one of them is gone when the test ends."""

    def __init__(self, env: dict[str, str], celery_app, prefix: str = "chaos") -> None:
        self.env, self.prefix = env, prefix
        self.celery_app = celery_app
        self.started: list[CeleryWorker] = []
        self._ready: list[CeleryWorker] = []

    def start(
        self,
        queues: str,
        pool: str,
        concurrency: int,
        name: str,
        count: int = 1,
        wait: bool = True,
        **env: str,
    ) -> list[CeleryWorker]:
        """Start `count` workers; unless `wait` is false, wait until every worker started so far
        answers a ping (so workers started with `wait=False` before boot in parallel)."""
        workers = [
            CeleryWorker(
                queues, {**self.env, **env}, pool=pool, concurrency=concurrency, name=f"{self.prefix}-{name}"
            )
            for _ in range(count)
        ]
        self.started += workers
        if wait:
            for worker in self.started:
                if worker not in self._ready:
                    worker.wait_ready(self.celery_app)
                    self._ready.append(worker)
        return workers

    def kill(self, worker: CeleryWorker) -> float:
        """`kill -9` the worker's whole process group: main process and every pool process."""
        os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()
        killed_at = time.monotonic()
        wait_for(lambda: not _group_alive(worker.proc.pid), 10, what="the killed worker's pool to be gone")
        return killed_at

    def stop_all(self) -> None:
        for worker in self.started:
            if worker.proc.poll() is None:
                try:
                    os.killpg(worker.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            worker.stop()
        self.started, self._ready = [], []


def _group_alive(pgid: int) -> bool:
    """Whether any live (not zombie) process is left in the process group."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def log_text(workers: Iterable[CeleryWorker]) -> str:
    return "\n".join(w.log_path.read_text(errors="replace") for w in workers)


def submit(client, **body) -> str:
    response = client.post("/api/execute", json=body)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["execution_id"]


def execution_row(app, execution_id: str) -> Execution:
    with app.app_context():
        row = db.session.get(Execution, execution_id)
        assert row is not None
        db.session.expunge(row)
        return row


def wait_finished(app, execution_id: str, timeout: float) -> Execution:
    def finished():
        row = execution_row(app, execution_id)
        return row if row.status in FINISHED else None

    return wait_for(finished, timeout, interval=0.1, what=f"execution {execution_id} to finish")
