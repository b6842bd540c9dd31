"""Fixtures for the dashboard tests: a private Postgres database and an app over it.

Page tests insert rows through the real models and the real trace sink; each starts from empty
tables. Tests that need real executions use the shared `stack_client` fixture instead.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.support.services import REDIS_HOST, REDIS_PORT, flushed_redis, migrated_database

#: Redis databases of our own (the shared fixtures use 13 and 14).
BROKER_DB, BACKEND_DB = 11, 12
FLOWER_URL = "http://flower.example.test:5555"
TABLES = ("memory_snapshots", "trace_nodes", "executions", "sessions", "contexts")


@pytest.fixture(scope="session")
def dashboard_db_url():
    with migrated_database("rlm_dash") as url:
        yield url


@pytest.fixture(scope="session")
def broker():
    with flushed_redis(BROKER_DB) as client:
        yield client


@pytest.fixture(scope="session")
def dashboard_app(dashboard_db_url, broker):
    from rlm_api import create_app
    from rlm_shared.config import Settings

    settings = Settings(
        database_url=dashboard_db_url,
        celery_broker_url=f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}",
        celery_result_backend=f"redis://{REDIS_HOST}:{REDIS_PORT}/{BACKEND_DB}",
        dispatch="celery",
        flower_url=FLOWER_URL,
        max_context_size=10_000,
        # An OpenAI-compatible server is configured (never called here), so `openai/...` models
        # pass the submission checks (rlm_api/model_checks.py).
        llm_api_base="http://127.0.0.1:9/v1",
    )
    return create_app(settings=settings)


@pytest.fixture()
def app(dashboard_app, broker):
    """The app over empty tables and an empty broker."""
    from rlm_api.database import db

    with dashboard_app.app_context():
        with db.engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    broker.flushdb()
    return dashboard_app


@pytest.fixture()
def client(app):
    return app.test_client()
