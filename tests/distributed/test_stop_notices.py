"""Stop notices: a leaf task skips the execution's status read only when the notices cover its
message, and every path that stops an execution announces it. Real Redis, Postgres and workers."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from datetime import timedelta

import redis
import sqlalchemy as sa

from rlm_api.database import db
from rlm_shared.models import Execution
from rlm_shared.queues import LLM_CALLS_TASK, LLM_QUEUE
from rlm_worker.dispatchers import CHECK_TRACE_HEADER, SENT_AT_HEADER, CeleryDispatcher
from rlm_worker.engine.types import LLMCall, LLMCallOutcome, utcnow
from rlm_worker.reaper import reap_once
from rlm_worker.stop_notices import MARGIN_SECONDS, StopListener, announce_stopped
from tests.chaos.cluster import PrivateRedis, make_workdir, remove_workdir, submit, wait_finished
from tests.distributed.conftest import BROKER_DB
from tests.support.scripted_model import user_text
from tests.support.services import REDIS_HOST, REDIS_PORT, wait_for

URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
HOLD_QUEUE = "rlm.test-hold"  # no worker consumes it
STOPPED = "the execution was stopped"
_seq = itertools.count(1)


def subscribed(listener: StopListener) -> bool:
    """Whether the listener is subscribed now (it covers a message sent MARGIN_SECONDS from now)."""
    return listener.covers(time.time() + MARGIN_SECONDS)


def test_a_listener_hears_stops_and_covers_only_messages_sent_after_it_subscribed():
    listener = StopListener(URL)
    sent_before = time.time()
    assert not listener.covers(sent_before)  # not started
    listener.start()
    try:
        wait_for(lambda: listener.covers(time.time()), 15, what="the listener to cover a message sent now")
        assert not listener.covers(sent_before)
        assert not listener.covers(None)  # a message without the header (a root of an older version)
        by_url, by_client = uuid.uuid4().hex, uuid.uuid4().hex
        announce_stopped(URL, by_url)
        announce_stopped(redis.Redis.from_url(URL), by_client)
        wait_for(lambda: listener.is_stopped(by_url) and listener.is_stopped(by_client), 10)
        assert not listener.is_stopped(uuid.uuid4().hex)
    finally:
        listener.close()


def test_forgetting_a_stop_ends_coverage_of_messages_sent_before_it_was_heard():
    listener = StopListener(URL, remember=2).start()
    try:
        wait_for(lambda: listener.covers(time.time()), 15, what="the listener to cover a message sent now")
        sent = time.time()
        assert listener.covers(sent)
        first, second, third = (uuid.uuid4().hex for _ in range(3))
        for execution_id in (first, second, third):
            announce_stopped(URL, execution_id)
        wait_for(lambda: listener.is_stopped(third), 10)
        assert not listener.is_stopped(first) and listener.is_stopped(second)
        assert not listener.covers(sent)  # its execution may be the one forgotten
        assert subscribed(listener)  # what is sent from now on is covered again
    finally:
        listener.close()


def test_a_killed_redis_ends_coverage_until_it_is_back():
    workdir = make_workdir()
    server = PrivateRedis(workdir).start()
    listener = StopListener(server.url()).start()
    try:
        wait_for(lambda: listener.covers(time.time()), 15, what="the listener to cover a message sent now")
        sent_before_the_outage = time.time()
        server.kill()
        wait_for(lambda: not subscribed(listener), 10, what="the listener to notice the outage")
        started = time.monotonic()
        announce_stopped(server.url(), uuid.uuid4().hex)  # best effort: logged, not raised
        assert time.monotonic() - started < 5
        server.start()
        wait_for(lambda: listener.covers(time.time()), 20, what="the listener to cover again")
        assert not listener.covers(sent_before_the_outage)  # a stop may have been missed meanwhile
        after = uuid.uuid4().hex
        announce_stopped(server.url(), after)  # the publisher's old connection died with the server
        wait_for(lambda: listener.is_stopped(after), 10)
    finally:
        listener.close()
        server.kill()
        remove_workdir(workdir)


def _execution(app, client, status: str) -> str:
    """An execution row with `status` written straight to the database (nothing announced)."""
    execution_id = submit(client, user_query="q", context="c")  # stays queued: no root worker
    with app.app_context():
        db.session.execute(sa.update(Execution).where(Execution.id == execution_id).values(status=status))
        db.session.commit()
    return execution_id


def _call(execution_id: str) -> LLMCall:
    seq = next(_seq)
    return LLMCall(
        execution_id, uuid.uuid4().hex, None, f"000000.{seq:06d}", 1, seq, "openai/scripted-sub", f"p{seq}"
    )


def _outcome(dispatcher: CeleryDispatcher, execution_id: str) -> tuple[LLMCall, LLMCallOutcome]:
    call = _call(execution_id)
    return call, dispatcher.run_llm_calls([call], timeout=30)[0]


def _redelivered(celery, execution_id: str) -> tuple[LLMCall, LLMCallOutcome]:
    """A first-send message (fresh headers), put on rlm.llm by kombu's own restore of an
    unacknowledged message, which marks it redelivered."""
    call = _call(execution_id)
    result = celery.send_task(
        LLM_CALLS_TASK,
        args=([call.to_dict()],),
        queue=HOLD_QUEUE,
        headers={SENT_AT_HEADER: time.time(), CHECK_TRACE_HEADER: False},
    )
    broker = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=BROKER_DB)
    payload = json.loads(broker.rpop(HOLD_QUEUE))
    with celery.connection_for_write() as conn:
        channel = conn.default_channel
        with channel.client.pipeline() as pipe:
            channel._do_restore_message(payload, "", LLM_QUEUE, pipe)
            pipe.execute()
    return call, LLMCallOutcome.from_dict(result.get(timeout=30)[0])


def test_a_fresh_message_skips_the_status_read_and_a_stop_notice_refuses_it(
    scale_app, scale_workers, scale_client, scale_env, scripted
):
    scripted.responder = lambda request: "seen " + user_text(request)
    scale_workers.start("rlm.llm", "threads", 4, "llm")
    celery = scale_app.extensions["celery"]
    fresh, resumed = CeleryDispatcher(celery), CeleryDispatcher(celery, resumed=True)

    # Cancelled in the database and never announced: only a status read can refuse its calls. The
    # first messages read it (the worker's listener starts with them); once the listener covers
    # their send time, a fresh message is answered by the model: no status was read.
    unannounced = _execution(scale_app, scale_client, "cancelled")

    def answered_fresh():
        call, outcome = _outcome(fresh, unannounced)
        return outcome.error is None and outcome.text == f"seen {call.prompt}"

    wait_for(answered_fresh, 60, interval=0.05, what="a fresh message to skip the status read")
    for label, (call, outcome) in {
        "resumed attempt": _outcome(resumed, unannounced),
        "redelivery": _redelivered(celery, unannounced),
    }.items():
        assert outcome.error == STOPPED, label  # these read the database, which says cancelled
        assert call.prompt not in scripted.prompts, label

    # Running in the database, announced as stopped: a refusal can only come from the notice.
    announced = _execution(scale_app, scale_client, "running")
    assert _outcome(resumed, announced)[1].error is None  # the database read lets it through
    announce_stopped(scale_env["CELERY_BROKER_URL"], announced)
    wait_for(lambda: _outcome(fresh, announced)[1].error == STOPPED, 30, what="the notice to refuse")
    for dispatcher in (fresh, resumed):
        call, outcome = _outcome(dispatcher, announced)
        assert outcome.error == STOPPED and call.prompt not in scripted.prompts


def test_the_cancel_route_the_root_and_the_reaper_announce_stops(
    scale_app, scale_workers, scale_client, scale_env, scripted
):
    listener = StopListener(scale_env["CELERY_BROKER_URL"]).start()
    try:
        wait_for(lambda: subscribed(listener), 15, what="the test's listener")

        cancelled = submit(scale_client, user_query="q", context="c")
        assert scale_client.post(f"/api/executions/{cancelled}/cancel").status_code == 200
        wait_for(lambda: listener.is_stopped(cancelled), 10, what="the cancel route's notice")

        settings = scale_app.config["RLM_SETTINGS"]
        lapsed = _execution(scale_app, scale_client, "running")
        with scale_app.app_context():
            db.session.execute(
                sa.update(Execution)
                .where(Execution.id == lapsed)
                .values(attempts=settings.max_attempts, lease_expires_at=utcnow() - timedelta(seconds=1))
            )
            db.session.commit()
            assert reap_once(db.engine, scale_app.extensions["celery"], settings)["failed"] == 1
        wait_for(lambda: listener.is_stopped(lapsed), 10, what="the reaper's notice")

        scale_workers.start("rlm.root", "threads", 2, "root", wait=False)
        scale_workers.start("rlm.llm", "threads", 4, "llm")
        finished = submit(scale_client, user_query="find it", context="the secret code is ABC-123.")
        assert wait_finished(scale_app, finished, 60).status == "succeeded"
        wait_for(lambda: listener.is_stopped(finished), 10, what="the root's notice")
    finally:
        listener.close()
