"""Fixtures of the fault tests: one private Redis and Postgres for the module, workers per test."""

from __future__ import annotations

import uuid

import pytest

from tests.chaos.cluster import (
    FAST_RECOVERY_ENV,
    PrivatePostgres,
    PrivateRedis,
    Workers,
    make_workdir,
    remove_workdir,
)
from tests.support.services import app_from_env, worker_env

PRICES = (
    '{"openai/scripted-root": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},'
    ' "openai/scripted-sub": {"input_cost_per_token": 1e-07, "output_cost_per_token": 4e-07}}'
)


@pytest.fixture(scope="module")
def private_services():
    workdir = make_workdir()
    redis_server = PrivateRedis(workdir).start()
    postgres = PrivatePostgres(workdir).init()
    postgres.start()
    try:
        database_url = postgres.create_database(f"rlm_chaos_{uuid.uuid4().hex[:8]}")
        yield {"redis": redis_server, "postgres": postgres, "database_url": database_url}
    finally:
        redis_server.kill()
        postgres.stop()
        remove_workdir(workdir)


@pytest.fixture(scope="module")
def chaos_env(private_services, model_server):
    redis_server = private_services["redis"]
    return worker_env(
        private_services["database_url"],
        redis_server.url(0),
        redis_server.url(1),
        model_server.url,
        MODEL_PRICES=PRICES,
        LLM_MAX_RETRIES="1",
        **FAST_RECOVERY_ENV,
    )


@pytest.fixture(scope="module")
def chaos_app(chaos_env):
    with app_from_env(chaos_env) as app:
        yield app


@pytest.fixture()
def workers(chaos_app, chaos_env, private_services):
    """Worker processes of this test, all killed at its end; the broker starts empty."""
    private_services["redis"].flush()
    pool = Workers(chaos_env, chaos_app.extensions["celery"])
    yield pool
    pool.stop_all()


@pytest.fixture()
def client(chaos_app):
    return chaos_app.test_client()
