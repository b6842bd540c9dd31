"""The workers' liveness file (rlm_worker/liveness.py), read by the Kubernetes probes exactly as
deploy/k8s runs them, against a real `celery worker` process."""

from __future__ import annotations

import os
import subprocess
import time

from rlm_worker.liveness import TOUCH_EVERY_SECONDS, alive_path
from tests.cli.test_k8s_manifests import worker_probe
from tests.support.services import CeleryWorker, free_redis_db, wait_for, worker_env


def probe(worker_name: str) -> bool:
    """The manifest's probe script, with the pod's `root@$HOSTNAME` replaced by this worker's name."""
    shell, flag, script = worker_probe("root")
    script = script.replace("root@$HOSTNAME", worker_name)
    return subprocess.run([shell, flag, script], capture_output=True, timeout=10).returncode == 0


def test_the_probe_follows_the_consumer(stack_app, pg_database_url, model_server):
    broker, backend = free_redis_db((22, 23))  # a queue of its own (tests use 3-14; the tracing test 20-21)
    env = worker_env(pg_database_url, broker, backend, model_server.url)
    worker = CeleryWorker("rlm.root", env, concurrency=1, name="alive")
    path = alive_path(worker.name)
    try:
        assert not probe(worker.name)
        wait_for(lambda: probe(worker.name), 240, what="the liveness file of a started worker")
        # The consumer's loop turns once the worker is ready (its warm-up can take a while here).
        first = path.stat().st_mtime
        wait_for(lambda: path.stat().st_mtime > first, 240, what="the file touched by the consumer's timer")
        # A file older than a minute fails the probe; the running consumer touches it again.
        stale = time.time() - 120
        os.utime(path, (stale, stale))
        assert not probe(worker.name)
        wait_for(lambda: probe(worker.name), TOUCH_EVERY_SECONDS * 3, what="the file touched again")
    finally:
        worker.stop()  # SIGTERM: warm shutdown stops the consumer, which removes the file
    assert not path.exists()
    assert not probe(worker.name)
