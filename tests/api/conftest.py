"""Fixtures of the API tests: a private Postgres database, apps over it, a broker nobody consumes.

Most tests only need executions stored and enqueued, so their apps dispatch to Redis databases of
our own with no worker attached. Tests that need executions to run use the shared `stack_client`.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.support.services import REDIS_HOST, REDIS_PORT, flushed_redis, migrated_database

#: Redis databases of our own (the others: 5, 7-8 bench, 9-10, 11-12, 13-14, 20-23 tracing and liveness).
BROKER_DB, BACKEND_DB = 3, 4
MAX_CONTEXT = 50_000
ALICE, BOB = "tok-alice-7c1f0e9d2b", "tok-bob-4a8e6d0c13"
TABLES = ("memory_snapshots", "trace_nodes", "executions", "sessions", "contexts")


@pytest.fixture(scope="session")
def api_db_url():
    with migrated_database("rlm_api") as url:
        yield url


@pytest.fixture(scope="session")
def broker():
    with flushed_redis(BROKER_DB) as client:
        yield client


def make_settings(database_url: str, **fields):
    from rlm_shared.config import Settings

    values = {
        "database_url": database_url,
        "celery_broker_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}",
        "celery_result_backend": f"redis://{REDIS_HOST}:{REDIS_PORT}/{BACKEND_DB}",
        "dispatch": "celery",
        "default_model": "openai/scripted-root",
        # A configured OpenAI-compatible server (never called: no worker consumes this broker), so
        # `openai/...` models are allowed and have a key (rlm_api/model_checks.py), and a submission
        # without a model keeps DEFAULT_MODEL instead of the offline plan.
        "llm_api_base": "http://127.0.0.1:9/v1",
        "max_context_size": MAX_CONTEXT,
        "secret_key": "api-tests-secret",
        **fields,
    }
    return Settings(**values)


def make_app(database_url: str, config: dict | None = None, **fields):
    from rlm_api import create_app

    overrides = {"API_MAX_WAIT_SECONDS": 0.3, "API_EVENTS_MAX_SECONDS": 2, **(config or {})}
    return create_app(overrides, settings=make_settings(database_url, **fields))


@pytest.fixture(scope="session")
def open_app(api_db_url, broker):
    return make_app(api_db_url)


@pytest.fixture(scope="session")
def token_app(api_db_url, broker):
    return make_app(
        api_db_url, api_tokens=f"{ALICE}, {BOB}", api_rate_limit="1000/minute", api_max_active_executions=2
    )


@pytest.fixture()
def clean(api_db_url, broker, open_app):
    """Empty tables and an empty broker before the test."""
    from rlm_api.database import db

    with open_app.app_context():
        with db.engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    broker.flushdb()


@pytest.fixture()
def client(open_app, clean):
    return open_app.test_client()


@pytest.fixture()
def token_client(token_app, clean):
    return token_app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def queued_messages(broker) -> int:
    return int(broker.llen("rlm.root"))
