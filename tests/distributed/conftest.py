"""Worker-process fixtures for the scale tests: a private database, Redis databases 6 and 7."""

from __future__ import annotations

import pytest
import redis

from tests.chaos.cluster import Workers
from tests.support.services import REDIS_HOST, REDIS_PORT, app_from_env, migrated_database, worker_env

BROKER_DB, BACKEND_DB = 6, 7


@pytest.fixture(scope="module")
def scale_env(model_server):
    with migrated_database("rlm_scale") as url:
        yield worker_env(
            url,
            f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}",
            f"redis://{REDIS_HOST}:{REDIS_PORT}/{BACKEND_DB}",
            model_server.url,
        )


@pytest.fixture(scope="module")
def scale_app(scale_env):
    with app_from_env(scale_env) as app:
        yield app


@pytest.fixture()
def scale_workers(scale_app, scale_env):
    for number in (BROKER_DB, BACKEND_DB):
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number).flushdb()
    pool = Workers(scale_env, scale_app.extensions["celery"], prefix="scale")
    yield pool
    pool.stop_all()


@pytest.fixture()
def scale_client(scale_app):
    return scale_app.test_client()
