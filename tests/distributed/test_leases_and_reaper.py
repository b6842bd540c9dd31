"""Leases and the reaper against real Postgres and Redis (no workers: the queue itself is inspected)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import redis

from rlm_api.database import db
from rlm_shared.config import Settings
from rlm_shared.models import Context, Execution
from rlm_worker.engine.types import utcnow
from rlm_worker.lease import claim
from rlm_worker.reaper import reap_once
from tests.support.services import REDIS_HOST, REDIS_PORT, create_database, upgrade_database

BROKER_DB = 5


@pytest.fixture(scope="module")
def app():
    from rlm_api import create_app

    url, drop = create_database("rlm_lease")
    upgrade_database(url)
    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=BROKER_DB).flushdb()
    broker = f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}"
    settings = Settings(
        database_url=url,
        celery_broker_url=broker,
        celery_result_backend=broker,
        lease_seconds=20,
        max_attempts=3,
    )
    app = create_app(settings=settings)
    yield app
    with app.app_context():
        db.engine.dispose()
    drop()


@pytest.fixture()
def queue(app):
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=BROKER_DB)
    client.delete("rlm.root")
    return lambda: client.llen("rlm.root")


def new_execution(**fields) -> str:
    ctx = Context(sha256=uuid.uuid4().hex, kind="str", size_chars=1, content="x")
    db.session.add(ctx)
    db.session.flush()
    row = Execution(context_id=ctx.id, user_query="q", root_model="m", sub_model="m", options={}, **fields)
    db.session.add(row)
    db.session.commit()
    return row.id


def test_only_one_claim_wins_until_the_lease_lapses(app):
    with app.app_context():
        eid = new_execution(status="queued")
        assert claim(db.engine, eid, 20, 3) == 1
        assert claim(db.engine, eid, 20, 3) is None  # a live lease: a redelivery is dropped
        db.session.execute(
            db.update(Execution)
            .where(Execution.id == eid)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        assert claim(db.engine, eid, 20, 3) == 2  # lapsed: taken over, as attempt 2
        row = db.session.get(Execution, eid)
        db.session.refresh(row)
        assert row.attempts == 2 and row.status == "running"


def test_a_finished_execution_is_never_claimed_again(app):
    with app.app_context():
        eid = new_execution(status="succeeded")
        assert claim(db.engine, eid, 20, 3) is None


def test_reaper_resends_lapsed_runs_and_lost_queued_ones(app, queue):
    with app.app_context():
        past = utcnow() - timedelta(seconds=5)
        lapsed = new_execution(status="running", attempts=1, started_at=past, lease_expires_at=past)
        live = new_execution(
            status="running", attempts=1, started_at=past, lease_expires_at=utcnow() + timedelta(seconds=30)
        )
        lost = new_execution(status="queued", created_at=utcnow() - timedelta(minutes=5))
        counts = reap_once(db.engine, app.extensions["celery"], app.config["RLM_SETTINGS"])
        assert counts["resumed"] >= 1 and counts["requeued"] >= 1
        assert queue() == counts["resumed"] + counts["requeued"]
        # Sent once: the next round waits for the claim instead of flooding the queue.
        again = reap_once(db.engine, app.extensions["celery"], app.config["RLM_SETTINGS"])
        assert again["resumed"] == 0
        db.session.expire_all()
        assert db.session.get(Execution, live).status == "running"
        assert db.session.get(Execution, lapsed).enqueued_at is not None
        assert db.session.get(Execution, lost).enqueued_at is not None


def test_reaper_fails_exhausted_and_times_out_overdue_runs(app, queue):
    with app.app_context():
        past = utcnow() - timedelta(seconds=5)
        exhausted = new_execution(status="running", attempts=3, started_at=past, lease_expires_at=past)
        overdue = new_execution(
            status="running", attempts=1, started_at=utcnow() - timedelta(hours=2), lease_expires_at=past
        )
        reap_once(db.engine, app.extensions["celery"], app.config["RLM_SETTINGS"])
        db.session.expire_all()
        failed = db.session.get(Execution, exhausted)
        assert failed.status == "failed" and "vanished 3 times" in failed.error
        timed = db.session.get(Execution, overdue)
        assert timed.status == "timed_out" and timed.finished_at is not None
