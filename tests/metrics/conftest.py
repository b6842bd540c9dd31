"""A real fleet for the metrics tests: gunicorn (2 processes), a prefork root worker and a prefork
llm worker (2 children each), each worker serving /metrics on its own port; Postgres, the session's
private Redis (databases 24 and 25) and the scripted model server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.support.services import (
    REDIS_HOST,
    REDIS_PORT,
    ROOT,
    SCRIPTED_PRICES,
    CeleryWorker,
    app_from_env,
    migrated_database,
    stop_process_group,
    stop_workers,
    wait_for,
    worker_env,
)

BROKER_DB, BACKEND_DB = 24, 25
METRICS_TOKEN = "metrics-test-token-0123456789"

#: (sample name, sorted label pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str, token: str | None = None, data: dict | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = None
    if data is not None:
        body, headers["Content-Type"] = json.dumps(data).encode(), "application/json"
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value, 0 when absent (a multiprocess counter shows only labels used)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@dataclass
class Fleet:
    api: str
    root_metrics: str
    llm_metrics: str
    llm_multiproc_dir: Path
    env: dict[str, str]

    def scrape(self, url: str) -> Samples:
        status, body = http(url, METRICS_TOKEN)
        assert status == 200, body[:500]
        return parse(body.decode())

    def scrape_all(self) -> dict[str, Samples]:
        return {
            "api": self.scrape(f"{self.api}/metrics"),
            "root": self.scrape(self.root_metrics),
            "llm": self.scrape(self.llm_metrics),
        }


class Gunicorn:
    """`gunicorn -c gunicorn.conf.py "rlm_api:create_app()"`, as the `web` service runs it."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.log_path = ROOT / "tests" / "artifacts" / f"gunicorn-metrics-{port}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "rlm_api:create_app()"],
            cwd=ROOT,
            env={**env, "PORT": str(port), "WEB_CONCURRENCY": "2"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{port}"

    def wait_ready(self) -> None:
        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log_path.read_text()[-3000:]}")
            return http(f"{self.url}/api/health")[0] == 200

        wait_for(up, 60, interval=0.2, what="gunicorn")

    def stop(self) -> None:
        stop_process_group(self.proc)
        self._log.close()


@pytest.fixture(scope="module")
def fleet(model_server, tmp_path_factory) -> Iterator[Fleet]:
    for number in (BROKER_DB, BACKEND_DB):
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number).flushdb()
    llm_dir = tmp_path_factory.mktemp("llm-metrics")
    root_port, llm_port = free_port(), free_port()
    with migrated_database("rlm_metrics") as url:
        env = worker_env(
            url,
            f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}",
            f"redis://{REDIS_HOST}:{REDIS_PORT}/{BACKEND_DB}",
            model_server.url,
            MODEL_PRICES=SCRIPTED_PRICES,
            METRICS_TOKEN=METRICS_TOKEN,
            LLM_MAX_RETRIES="0",
        )
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        web = Gunicorn(env, free_port())
        root = CeleryWorker(
            "rlm.root",
            {**env, "WORKER_METRICS_PORT": str(root_port)},
            pool="prefork",
            concurrency=2,
            name="mroot",
        )
        llm = CeleryWorker(
            "rlm.llm",
            {**env, "WORKER_METRICS_PORT": str(llm_port), "PROMETHEUS_MULTIPROC_DIR": str(llm_dir)},
            pool="prefork",
            concurrency=2,
            name="mllm",
        )
        try:
            with app_from_env(env) as app:
                celery = app.extensions["celery"]
                root.wait_ready(celery)
                llm.wait_ready(celery)
            web.wait_ready()
            fleet = Fleet(
                api=web.url,
                root_metrics=f"http://127.0.0.1:{root_port}/metrics",
                llm_metrics=f"http://127.0.0.1:{llm_port}/metrics",
                llm_multiproc_dir=llm_dir,
                env=env,
            )
            for target in (fleet.root_metrics, fleet.llm_metrics):
                wait_for(lambda t=target: http(t, METRICS_TOKEN)[0] == 200, 30, what=f"metrics at {target}")
            yield fleet
        finally:
            root.terminate()
            llm.terminate()
            web.stop()
            stop_workers(root, llm)
