"""Worker-process fixtures for the scale tests: a private database, Redis databases 6 and 7."""

from __future__ import annotations

import os

import pytest
import redis

from tests.chaos.cluster import Workers
from tests.conftest import TEST_SECRET
from tests.support.services import REDIS_HOST, REDIS_PORT, app_from_env, migrated_database

BROKER_DB, BACKEND_DB = 6, 7


@pytest.fixture(scope="module")
def scale_env(model_server):
    with migrated_database("rlm_scale") as url:
        yield {
            **os.environ,
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}",
            "CELERY_RESULT_BACKEND": f"redis://{REDIS_HOST}:{REDIS_PORT}/{BACKEND_DB}",
            "LLM_API_BASE": model_server.url,
            "LLM_API_KEY": "scripted",
            "DEFAULT_MODEL": "openai/scripted-root",
            "SUB_MODEL": "openai/scripted-sub",
            "OPENAI_API_KEY": TEST_SECRET,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "DISPATCH": "celery",
        }


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
