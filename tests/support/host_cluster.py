"""The whole product spread over simulated hosts (`tests/support/hosts.py`), for the multi-host
test and benchmark:

    db      10.233.0.2   redis-server :6379 and a throwaway Postgres :5432 (initdb as `postgres`)
    model   10.233.0.3   the bench's scripted OpenAI-compatible model server :8000
    api     10.233.0.4   gunicorn serving the Flask app :8000
    root    10.233.0.5   Celery worker on rlm.root
    llm1…N  10.233.0.6…  Celery workers on rlm.llm, one per host
    client  next free    the harness's own connections (`Inside`)

Every service process runs in its own network and mount namespace; their environment names only
the db and model hosts' addresses. Nothing listens on the machine's loopback or on any address
outside these namespaces, and the shared Postgres and Redis of the rest of the suite are never
reachable from here (each namespace has its own loopback).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from tests.support.hosts import Host, HostNetwork, Inside, Process

PG_BIN = Path(os.environ.get("TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PORT = 8000
DATABASE = "rlm"
#: Variables passed through from the harness: how to find programs, nothing about services.
_PASSED = ("PATH", "LANG", "LC_ALL", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "TZ")
FINISHED = {"succeeded", "failed", "timed_out", "cancelled"}


@dataclass
class HostCluster:
    llm_hosts: int = 2
    llm_threads: int = 16
    root_threads: int = 4
    web_workers: int = 2
    latency: float = 0.2
    extra_env: dict[str, str] = field(default_factory=dict)
    clock: Path | None = None  # bench.stage_clock's folder (a measurement, not a shared resource)

    def start(self) -> HostCluster:
        self.workdir = Path(tempfile.mkdtemp(prefix="rlm-hosts-", dir="/var/tmp"))
        self.workdir.chmod(0o755)
        self.network = HostNetwork(self.workdir)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        net = self.network
        self.db, self.model = net.add_host("db"), net.add_host("model")
        self.api, self.root = net.add_host("api"), net.add_host("root")
        self.llm = [net.add_host(f"llm{i + 1}") for i in range(self.llm_hosts)]
        self.client_host = net.add_host("client")
        self.inside = Inside(self.client_host)
        self.database_url = f"postgresql+psycopg://postgres@{self.db.address}:5432/{DATABASE}"
        self.broker_url = f"redis://{self.db.address}:6379/0"
        self.backend_url = f"redis://{self.db.address}:6379/1"
        self.model_url = f"http://{self.model.address}:{PORT}"
        self.api_url = f"http://{self.api.address}:{PORT}"
        self.services: dict[str, Process] = {}
        self._start_database()
        self.services["model"] = self.model.spawn(
            "model-server",
            [sys.executable, "-m", "bench.model_server", "--host", self.model.address, "--port", str(PORT),
             "--latency", str(self.latency)],
            self.env(),
        )  # fmt: skip
        self.inside.wait_for(lambda: httpx.get(f"{self.model_url}/bench/calls").status_code == 200, 60,
                             what="the model server")  # fmt: skip
        self.api.run([sys.executable, "-m", "flask", "--app", "rlm_api", "db", "upgrade"], self.env())
        self.services["api"] = self.api.spawn(
            "gunicorn",
            [sys.executable, "-m", "gunicorn", "-w", str(self.web_workers), "--threads", "8",
             "-b", f"{self.api.address}:{PORT}", "--graceful-timeout", "5", "--log-level", "warning",
             "bench.stage_clock:api_app()" if self.clock is not None else "rlm_api:create_app()"],
            self.env(),
        )  # fmt: skip
        self.services["root"] = self._worker(self.root, "rlm.root", self.root_threads)
        for host in self.llm:
            self.services[host.name] = self._worker(host, "rlm.llm", self.llm_threads)
        self.wait_for_workers(1, len(self.llm))

    def _start_database(self) -> None:
        datadir = self.workdir / "pgdata"
        datadir.mkdir()
        shutil.chown(datadir, "postgres", "postgres")
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(datadir), "-U", "postgres",
             "-A", "trust", "-N"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        with open(datadir / "pg_hba.conf", "a") as hba:
            hba.write("host all all 10.233.0.0/24 trust\n")  # the hosts' network only
        self.services["redis"] = self.db.spawn(
            "redis",
            ["redis-server", "--bind", self.db.address, "--port", "6379", "--protected-mode", "no", "--save", "",
             "--appendonly", "no", "--dir", "/tmp", "--databases", "4"],
            self.env(),
        )  # fmt: skip
        self.services["postgres"] = self.db.spawn(
            "postgres",
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "postgres"), "-D", str(datadir), "-p", "5432",
             "-k", "/tmp", "-c", f"listen_addresses={self.db.address}", "-c", "fsync=off",
             "-c", "max_connections=300", "-c", "track_io_timing=off"],
            self.env(),
        )  # fmt: skip
        admin = f"postgresql://postgres@{self.db.address}:5432/postgres"

        def create() -> bool:
            with psycopg.connect(admin, autocommit=True, connect_timeout=2) as conn:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
            return True

        self.inside.wait_for(create, 60, what="Postgres on the db host")
        self.inside.wait_for(lambda: self.redis().ping(), 30, what="Redis on the db host")

    def env(self, **extra: str) -> dict[str, str]:
        """A service's whole environment: the shared services' addresses and the bench models."""
        env = {k: os.environ[k] for k in _PASSED if k in os.environ}
        env.update(
            HOME="/tmp",
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=self.broker_url,
            CELERY_RESULT_BACKEND=self.backend_url,
            LLM_API_BASE=f"{self.model_url}/v1",
            LLM_API_KEY="bench",
            DEFAULT_MODEL="openai/bench-root",
            SUB_MODEL="openai/bench-sub",
            MODEL_PRICES='{"openai/bench-root": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},'
            ' "openai/bench-sub": {"input_cost_per_token": 1e-07, "output_cost_per_token": 4e-07}}',
            MAX_CONTEXT_SIZE="60000000",
            DISPATCH="celery",
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            LOG_LEVEL="WARNING",
        )
        if self.clock is not None:
            env["RLM_STAGE_CLOCK"] = str(self.clock)
        env.update(self.extra_env)
        env.update(extra)
        return env

    def _worker(self, host: Host, queue: str, threads: int) -> Process:
        role = "root" if queue == "rlm.root" else "llm"
        probe = ["-I", "bench.stage_clock"] if self.clock is not None else []
        return host.spawn(
            f"celery-{role}",
            [sys.executable, "-m", "celery", "-A", "rlm_worker.celery_app", "worker", "-Q", queue, "-P", "threads",
             "-c", str(threads), "-n", f"{role}@{host.name}", "--loglevel", "WARNING", "--without-gossip",
             "--without-mingle", *probe],
            self.env(),
        )  # fmt: skip

    def wait_for_workers(self, roots: int, llms: int, timeout: float = 240) -> None:
        """Until the API's health check counts the workers on each queue (it asks them over the broker)."""

        def counted() -> bool:
            for proc in self.services.values():
                proc.check_alive()
            body = httpx.get(f"{self.api_url}/api/health", timeout=10).json()
            workers = body.get("workers") or body.get("checks", {}).get("workers") or {}
            return workers.get("rlm.root", 0) >= roots and workers.get("rlm.llm", 0) >= llms

        self.inside.wait_for(counted, timeout, interval=1.0, what=f"{roots} root and {llms} llm workers")

    # -- from the client host -------------------------------------------------------------------
    def redis(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host=self.db.address, port=6379, db=db, socket_connect_timeout=2)

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run a query against the cluster's database from the client host."""

        def run() -> list[tuple[Any, ...]]:
            url = f"postgresql://postgres@{self.db.address}:5432/{DATABASE}"
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                return conn.execute(query, params).fetchall()

        return self.inside(run)

    def http(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        base = self.model_url if path.startswith("/bench/") else self.api_url
        return self.inside(lambda: httpx.request(method, f"{base}{path}", timeout=300, **kwargs))

    def submit(self, query: str, context: Any, options: dict[str, Any] | None = None) -> str:
        response = self.http("POST", "/api/execute", json={"user_query": query, "context": context,
                                                            "options": options or {}})  # fmt: skip
        if response.status_code != 202:
            raise RuntimeError(f"submit failed: {response.status_code} {response.text[:500]}")
        return response.json()["execution_id"]

    def wait(self, execution_id: str, timeout: float = 300) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            body = httpx.get(f"{self.api_url}/api/executions/{execution_id}", timeout=30).json()
            return body if body["status"] in FINISHED else None

        return self.inside.wait_for(finished, timeout, interval=0.25, what=f"execution {execution_id}")

    def kill_host(self, host: Host) -> None:
        """The host dies: SIGKILL to everything on it, then its namespace and link are deleted."""
        for name, proc in list(self.services.items()):
            if proc.host is host:
                self.services.pop(name)
        self.network.remove_host(host.name)

    def stop(self) -> None:
        inside = getattr(self, "inside", None)
        if inside is not None:
            inside.close()
        for proc in getattr(self, "services", {}).values():  # a warm shutdown for all at once
            if proc.proc.poll() is None:
                proc.terminate()
        self.network.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
