"""Shared fixtures: real Postgres, Redis and Celery workers, and a scripted model server on loopback."""

from __future__ import annotations

import os

import pytest

from tests.support.private_redis import ensure_private_redis

ensure_private_redis()  # before anything reads TEST_REDIS_PORT

from tests.support.scripted_model import ScriptedModelServer, default_responder  # noqa: E402
from tests.support.services import (  # noqa: E402
    SCRIPTED_PRICES,
    TEST_SECRET,  # noqa: F401 - re-exported: suites import it from here
    CeleryWorker,
    free_redis_db,
    migrated_database,
    stop_workers,
    worker_env,
)

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(scope="session")
def model_server():
    server = ScriptedModelServer().start()
    yield server
    server.stop()


@pytest.fixture()
def scripted(model_server):
    """The model server, reset to the default script; tests may set `.responder` and `.latency`."""
    model_server.reset(responder=default_responder, latency=0.0)
    yield model_server
    model_server.reset(responder=default_responder, latency=0.0)


@pytest.fixture(scope="session")
def pg_database_url():
    with migrated_database() as url:
        yield url


@pytest.fixture(scope="session")
def stack_env(pg_database_url, model_server):
    broker, backend = free_redis_db()
    return worker_env(pg_database_url, broker, backend, model_server.url, MODEL_PRICES=SCRIPTED_PRICES)


@pytest.fixture(scope="session")
def stack_settings(stack_env):
    from rlm_shared.config import Settings

    keys = (
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "LLM_API_BASE",
        "LLM_API_KEY",
        "DEFAULT_MODEL",
        "SUB_MODEL",
        "MODEL_PRICES",
        "DISPATCH",
    )
    return Settings(**{k.lower(): stack_env[k] for k in keys})


@pytest.fixture(scope="session")
def stack_app(stack_settings):
    from rlm_api import create_app

    return create_app(settings=stack_settings)


#: On a loaded machine a worker's start-up alone has taken over 60 s.
WORKER_START_SECONDS = 240


@pytest.fixture(scope="session")
def celery_workers(stack_app, stack_env):
    """One root worker and one llm worker, real processes, on the test broker; started once for
    the session and shared by every suite that needs executions to run (api, client, cli, ...)."""
    celery = stack_app.extensions["celery"]
    root = CeleryWorker("rlm.root", stack_env, pool="threads", concurrency=4, name="root")
    llm = CeleryWorker("rlm.llm", stack_env, pool="threads", concurrency=16, name="llm")
    try:
        root.wait_ready(celery, timeout=WORKER_START_SECONDS)
        llm.wait_ready(celery, timeout=WORKER_START_SECONDS)
        yield {"root": root, "llm": llm}
    finally:
        stop_workers(root, llm)


@pytest.fixture()
def stack_client(stack_app, celery_workers):
    return stack_app.test_client()
