"""Labels stay a bounded set (model error kinds, sandbox guards), and a dead process's live gauge
stops counting while its counters stay (the hook gunicorn's child_exit and Celery's
worker_process_shutdown call)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import litellm
import pytest

from rlm_worker.engine.llm import classify
from rlm_worker.engine.ports import ModelError
from rlm_worker.metrics import error_kind, sandbox_limit_guard
from tests.support.services import ROOT

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (litellm.RateLimitError("slow down", llm_provider="openai", model="m"), "RateLimitError"),
        (litellm.Timeout("late", model="m", llm_provider="openai"), "Timeout"),
        (litellm.AuthenticationError("bad key", llm_provider="openai", model="m"), "AuthenticationError"),
        (litellm.APIConnectionError("refused", llm_provider="openai", model="m"), "APIConnectionError"),
        (ValueError("a bug: with a colon"), "ValueError"),
    ],
)
def test_a_provider_error_is_labelled_by_its_class(exc, kind):
    error = classify(exc)
    assert error_kind(str(error), error.transient) == kind


def test_errors_that_name_no_class_get_a_fixed_label():
    refused = ModelError("model 'x/y' is not allowed by MODEL_ALLOWLIST (allowed: openai/*)")
    assert error_kind(str(refused), refused.transient) == "refused"
    assert error_kind("the provider said: try later", transient=True) == "other"


def test_sandbox_limits_map_to_a_few_guards():
    assert sandbox_limit_guard("cell exceeded 10 s CPU") == "cell_cpu"
    assert sandbox_limit_guard("cell exceeded the 512 MiB memory limit") == "cell_memory"
    assert sandbox_limit_guard("cell exceeded 30 s wall-clock") == "cell_wall_clock"
    assert sandbox_limit_guard("the execution used up its 60 s of REPL CPU time") == "execution_cpu"
    assert (
        sandbox_limit_guard("the REPL process was killed by the system (CPU or memory limit)")
        == "repl_killed"
    )


FORKS = textwrap.dedent(
    """
    import os
    import time
    from prometheus_client import generate_latest
    from rlm_worker import metrics

    metrics.api_request("/", "GET", 200, 0.01)  # a metric made before the switch (a worker's app)
    metrics.use_multiprocess_dir()  # as gunicorn's master and a Celery worker's main process do
    children = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # a pool process: one REPL alive, one execution counted, then it dies
            metrics.sandbox_started()
            metrics.execution_finished("succeeded", None)
            os.write(write, b"x")
            while True:  # the parent kills us
                time.sleep(60)
        os.read(read, 1)
        children.append(pid)

    def scrape():
        text = generate_latest(metrics.exposition_registry()).decode()
        return [line for line in text.splitlines() if line.startswith(("rlm_live", "rlm_executions_total"))]

    print("alive", scrape())
    os.kill(children[0], 9)
    os.waitpid(children[0], 0)
    metrics.mark_process_dead(children[0])
    print("one dead", scrape())
    os.kill(children[1], 9)
    os.waitpid(children[1], 0)
    """
)


def test_a_dead_process_stops_counting_its_live_sandboxes_but_keeps_its_counts():
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    out = subprocess.run(
        [sys.executable, "-c", FORKS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    alive, one_dead = out.splitlines()
    assert "rlm_live_sandboxes 2.0" in alive, alive
    assert 'rlm_executions_total{status="succeeded",strategy="none"} 2.0' in alive
    assert "rlm_live_sandboxes 1.0" in one_dead, one_dead
    assert 'rlm_executions_total{status="succeeded",strategy="none"} 2.0' in one_dead
