"""The benchmarked system, for real: model server, Postgres, Redis, the API under gunicorn, Celery workers.

Every part is its own process, as in production, so CPU and memory figures are per process and the
harness (this process) only submits and waits. `BenchStack` starts them and tears them down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from celery import Celery

from bench import stage_probe
from tests.support.services import (
    REDIS_HOST,
    REDIS_PORT,
    create_database,
    stop_process_group,
    upgrade_database,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[1]
FINISHED = {"succeeded", "failed", "timed_out", "cancelled"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited: {self.log_path.read_text(errors='replace')[-3000:]}")

    def terminate(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self) -> None:
        stop_process_group(self.proc)
        self._log.close()


def tree_pids(pid: int) -> list[int]:
    """`pid` and all its descendants (gunicorn workers, sandbox subprocesses), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def memory_kb(pid: int, field_name: str) -> int:
    """VmRSS (now) or VmHWM (peak) of one process, in kB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Finished:
    execution: dict[str, Any]
    submitted_at: float  # time.time() just before the POST
    accepted_at: float  # time.time() when the 202 came back

    @property
    def wall_seconds(self) -> float:
        """Submit → the worker stored the result (the worker's own clock; same machine)."""
        return _epoch(self.execution["finished_at"]) - self.submitted_at


def _epoch(iso: str) -> float:
    value = datetime.fromisoformat(iso)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


@dataclass
class BenchStack:
    latency: float = 0.2
    llm_workers: int = 1
    llm_threads: int = 32
    root_threads: int = 8
    web_workers: int = 2
    redis_dbs: tuple[int, int] = (7, 8)
    max_context_size: int = 60_000_000
    extra_env: dict[str, str] = field(default_factory=dict)

    def start(self) -> BenchStack:
        self.log_dir = Path(tempfile.mkdtemp(prefix="rlm-bench-"))
        self.model_port, self.api_port = free_port(), free_port()
        self.database_url, self._drop_database = create_database("rlm_bench")
        upgrade_database(self.database_url)
        for db in self.redis_dbs:
            redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()
        broker, backend = (f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}" for db in self.redis_dbs)
        self.model_url = f"http://127.0.0.1:{self.model_port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "CELERY_BROKER_URL": broker,
            "CELERY_RESULT_BACKEND": backend,
            "LLM_API_BASE": f"{self.model_url}/v1",
            "LLM_API_KEY": "bench",
            "DEFAULT_MODEL": "openai/bench-root",
            "SUB_MODEL": "openai/bench-sub",
            "MODEL_PRICES": '{"openai/bench-root": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},'
            ' "openai/bench-sub": {"input_cost_per_token": 1e-07, "output_cost_per_token": 4e-07}}',
            "MAX_CONTEXT_SIZE": str(self.max_context_size),
            "DISPATCH": "celery",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LOG_LEVEL": "WARNING",
            **self.extra_env,
        }
        self.celery = Celery(broker=broker, backend=backend)
        self.processes: dict[str, Process] = {}
        self.model = self._spawn(
            "model",
            [
                sys.executable,
                "-m",
                "bench.model_server",
                "--port",
                str(self.model_port),
                "--latency",
                str(self.latency),
            ],
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=120)
        self.model_http = httpx.Client(base_url=self.model_url, timeout=30)
        wait_for(lambda: self.model_http.get("/bench/calls").status_code == 200, 30, what="model server")
        self.start_api()
        self.start_root_worker()
        self.set_llm_workers(self.llm_workers)
        return self

    def _spawn(self, name: str, argv: list[str]) -> Process:
        proc = Process(name, argv, self.env, self.log_dir)
        self.processes[name] = proc
        return proc

    def _stop(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc is not None:
            proc.stop()

    # -- processes ------------------------------------------------------------------------------
    def start_api(self) -> None:
        self._stop("api")
        api = self._spawn(
            "api",
            [
                sys.executable, "-m", "gunicorn", "-w", str(self.web_workers), "--threads", "8",
                "-b", f"127.0.0.1:{self.api_port}", "--graceful-timeout", "5", "--log-level", "warning",
                "rlm_api:create_app()",
            ],
        )  # fmt: skip

        def up() -> bool:
            api.check_alive()
            return self.http.get("/api/executions/none").status_code == 404

        wait_for(up, 60, interval=0.2, what="API")

    def _celery_worker(self, name: str, queue: str, threads: int) -> Process:
        node = f"{name}-{os.getpid()}@bench"
        proc = self._spawn(
            name,
            [
                sys.executable, "-m", "celery", "-A", "rlm_worker.celery_app", "worker", "-Q", queue,
                "-P", "threads", "-c", str(threads), "-n", node, "--loglevel", "WARNING",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                *(["-I", "bench.stage_probe"] if self.env.get(stage_probe.FOLDER_ENV) else []),
            ],
        )  # fmt: skip

        def ready() -> bool:
            proc.check_alive()
            return bool(self.celery.control.ping(destination=[node], timeout=0.5))

        wait_for(ready, 90, interval=0.2, what=f"worker {node}")
        return proc

    def start_root_worker(self) -> None:
        self._stop("root")
        self._celery_worker("root", "rlm.root", self.root_threads)

    def set_llm_workers(self, count: int, threads: int | None = None) -> None:
        """Run exactly `count` llm worker processes (restarting them all)."""
        for name in [n for n in self.processes if n.startswith("llm")]:
            self._stop(name)
        self.llm_workers = count
        self.llm_threads = threads or self.llm_threads
        for i in range(count):
            self._celery_worker(f"llm{i}", "rlm.llm", self.llm_threads)

    def set_lean(self, on: bool) -> None:
        """Restart the llm workers with the lean model client on (the default) or off (litellm for
        every sub-call). The root worker keeps its client: its two calls an execution hardly count."""
        if self.env.get("LEAN_MODEL_CLIENT", "true").lower() == ("true" if on else "false"):
            return
        self.env["LEAN_MODEL_CLIENT"] = "true" if on else "false"
        self.set_llm_workers(self.llm_workers)

    def stamp_stages(self, folder: Path | None) -> None:
        """Restart the workers with `bench.stage_probe` writing into `folder` (None: without it)."""
        if folder is None:
            self.env.pop(stage_probe.FOLDER_ENV, None)
        else:
            self.env[stage_probe.FOLDER_ENV] = str(folder)
        self.start_root_worker()
        self.set_llm_workers(self.llm_workers)

    def pids(self, name: str) -> list[int]:
        return tree_pids(self.processes[name].pid)

    def stop(self) -> None:
        self.http.close()
        self.model_http.close()
        processes = list(self.processes.values())
        self.processes.clear()
        for proc in processes:  # all at once: each waits for its own graceful shutdown
            proc.terminate()
        for proc in processes:
            proc.stop()
        self._drop_database()

    # -- executions -----------------------------------------------------------------------------
    def submit(
        self, query: str, context: Any, options: dict[str, Any] | None = None
    ) -> tuple[str, float, float]:
        """POST /api/execute; returns (execution id, time before the POST, time of the 202)."""
        submitted = time.time()
        response = self.http.post(
            "/api/execute", json={"user_query": query, "context": context, "options": options or {}}
        )
        accepted = time.time()
        if response.status_code != 202:
            raise RuntimeError(f"submit failed: {response.status_code} {response.text[:500]}")
        return response.json()["execution_id"], submitted, accepted

    def wait(self, execution_id: str, timeout: float = 300, interval: float = 0.25) -> dict[str, Any]:
        """Poll until the execution finishes. The figures come from the worker's `finished_at`, not
        from when the poll saw it, so a slow poll costs no precision, and a fast one would load the
        API (and the two cores) during the very run being measured."""

        def finished() -> dict[str, Any] | None:
            body = self.http.get(f"/api/executions/{execution_id}").json()
            return body if body["status"] in FINISHED else None

        return wait_for(finished, timeout, interval=interval, what=f"execution {execution_id}")

    def run(self, query: str, context: Any, options: dict[str, Any] | None = None) -> Finished:
        execution_id, submitted, accepted = self.submit(query, context, options)
        execution = self.wait(execution_id)
        if execution["status"] != "succeeded":
            raise RuntimeError(f"execution {execution_id} {execution['status']}: {execution['error']}")
        return Finished(execution, submitted, accepted)

    def model_calls(self) -> dict[str, Any]:
        return self.model_http.get("/bench/calls").json()

    def reset_model(self, latency: float | None = None) -> None:
        """Clear the model server's counters; with `latency`, change its per-call latency too."""
        self.model_http.post("/bench/reset", json={} if latency is None else {"latency": latency})
        if latency is not None:
            self.latency = latency
