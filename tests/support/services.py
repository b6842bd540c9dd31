"""Real services for the test suite: a throwaway Postgres database, Redis databases, Celery workers.

Everything is started for real and torn down after; waits poll a condition with a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis
from flask import Flask

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_DSN = os.environ.get("TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST = os.environ.get("TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", "6379"))


def wait_for(
    condition: Callable[[], object], timeout: float, interval: float = 0.05, what: str = "condition"
):
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:  # the service may not be up yet
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout} s waiting for {what}" + (f": {last_error}" if last_error else "")
    )


def stop_process_group(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM a process started in its own session (and its children), SIGKILL after `grace` s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def create_database(prefix: str = "rlm_test") -> tuple[str, Callable[[], None]]:
    """A fresh, empty Postgres database; returns its SQLAlchemy URL and a dropper."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]

    def drop() -> None:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}", drop


def upgrade_database(database_url: str) -> None:
    """Run the real migrations (`flask db upgrade`) against `database_url`."""
    env = {**os.environ, "DATABASE_URL": database_url}
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "rlm_api", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


@contextmanager
def migrated_database(prefix: str = "rlm_test") -> Iterator[str]:
    """A fresh Postgres database at the newest schema for the duration of the block."""
    url, drop = create_database(prefix)
    try:
        upgrade_database(url)
        yield url
    finally:
        drop()


@contextmanager
def flushed_redis(db: int) -> Iterator[redis.Redis]:
    """A Redis database of the test's own, empty at the start and at the end."""
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()


@contextmanager
def app_from_env(env: dict[str, str]) -> Iterator[Flask]:
    """The Flask app a worker started with `env` would build; its connections closed after."""
    from rlm_api import create_app
    from rlm_api.database import db
    from rlm_shared.config import Settings

    fields = {k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields}
    app = create_app(settings=Settings(**fields))
    try:
        yield app
    finally:
        with app.app_context():
            db.engine.dispose()


#: In every worker's environment; tests assert it never leaks into a trace, response or REPL.
TEST_SECRET = "sk-test-SECRET-do-not-leak-1234"
SCRIPTED_PRICES = (
    '{"openai/scripted-root": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},'
    ' "openai/scripted-sub": {"input_cost_per_token": 1e-07, "output_cost_per_token": 4e-07}}'
)


def worker_env(database_url: str, broker: str, backend: str, model_url: str, **extra: str) -> dict[str, str]:
    """The environment of a test's workers: its database and broker, the scripted models."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": backend,
        "LLM_API_BASE": model_url,
        "LLM_API_KEY": "scripted",
        "DEFAULT_MODEL": "openai/scripted-root",
        "SUB_MODEL": "openai/scripted-sub",
        "OPENAI_API_KEY": TEST_SECRET,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "DISPATCH": "celery",
        **extra,
    }


def free_redis_db(client_dbs: tuple[int, int] = (13, 14)) -> tuple[str, str]:
    for db in client_dbs:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()
    broker, backend = client_dbs
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{broker}", f"redis://{REDIS_HOST}:{REDIS_PORT}/{backend}"


class CeleryWorker:
    """A real `celery worker` subprocess on the given queues."""

    def __init__(
        self, queues: str, env: dict[str, str], pool: str = "threads", concurrency: int = 4, name: str = "w"
    ):
        self.name = f"{name}-{uuid.uuid4().hex[:6]}@localhost"
        self.log_path = Path(ROOT / "tests" / "artifacts" / f"{self.name.split('@')[0]}.log")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._terminated = False
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "rlm_worker.celery_app",
                "worker",
                "-Q",
                queues,
                "-P",
                pool,
                "-c",
                str(concurrency),
                "-n",
                self.name,
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def terminate(self) -> None:
        """Ask for a warm shutdown (once) and return at once; `stop` then waits for it."""
        if self.proc.poll() is None and not self._terminated:
            self._terminated = True
            self.proc.terminate()

    def wait_ready(self, celery_app, timeout: float = 60) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log_path.read_text()[-3000:]}")
            replies = celery_app.control.ping(destination=[self.name], timeout=0.5)
            return bool(replies)

        wait_for(ready, timeout, interval=0.2, what=f"celery worker {self.name}")

    def stop(self) -> None:
        self.terminate()
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def stop_workers(*workers: CeleryWorker) -> None:
    """Stop workers together: each finishes its warm shutdown while the others finish theirs."""
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.stop()
