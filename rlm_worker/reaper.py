"""Recovery of executions whose worker vanished, run as a thread in every worker process.

A running execution whose lease lapsed is re-enqueued (its next claim resumes it from the trace),
or failed once it has used up its attempts, or marked timed out once past its deadline. A queued
execution whose message was lost (a broker restart) is sent again. Duplicate deliveries are
harmless: only one claim can win.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from celery import Celery
from sqlalchemy.engine import Engine as SAEngine

from rlm_shared.config import Settings
from rlm_shared.models import Execution
from rlm_shared.queues import ROOT_QUEUE, RUN_EXECUTION_TASK
from rlm_shared.retention import prune
from rlm_worker import metrics
from rlm_worker.engine.types import utcnow
from rlm_worker.stop_notices import announce_stopped

log = logging.getLogger("rlm.reaper")

#: A queued execution not picked up for this long is sent again (its message may be lost).
REQUEUE_AFTER_SECONDS = 60.0
#: How often a worker applies RETENTION_DAYS (rlm_shared/retention.py).
PRUNE_EVERY_SECONDS = 3600.0
#: Grace beyond an execution's own timeout before a lapsed one is marked timed out.
TIMEOUT_GRACE_SECONDS = 30.0


def reap_once(engine: SAEngine, celery: Celery, settings: Settings) -> dict[str, int]:
    now = utcnow()
    counts = {"resumed": 0, "failed": 0, "timed_out": 0, "requeued": 0}
    resend_before = now - timedelta(seconds=max(settings.lease_seconds, 5.0))
    with engine.begin() as conn:
        lapsed = conn.execute(
            sa.select(
                Execution.id,
                Execution.attempts,
                Execution.started_at,
                Execution.options,
                Execution.enqueued_at,
            ).where(Execution.status == "running", Execution.lease_expires_at < now)
        ).all()
    for row in lapsed:
        strategy = (row.options or {}).get("strategy")
        timeout = float((row.options or {}).get("timeout_seconds", settings.execution_timeout))
        if (
            row.started_at
            and _aware(row.started_at) + timedelta(seconds=timeout + TIMEOUT_GRACE_SECONDS) < now
        ):
            counts["timed_out"] += _close(
                engine,
                settings,
                row.id,
                "timed_out",
                "the worker running it vanished after its time limit",
                strategy,
            )
        elif row.attempts >= settings.max_attempts:
            message = f"the worker running it vanished {row.attempts} times; giving up"
            counts["failed"] += _close(engine, settings, row.id, "failed", message, strategy)
        elif row.enqueued_at is None or _aware(row.enqueued_at) < resend_before:
            counts["resumed"] += _resend(engine, celery, row.id, now, resend_before)
    with engine.begin() as conn:
        stale = now - timedelta(seconds=REQUEUE_AFTER_SECONDS)
        queued = conn.execute(
            sa.select(Execution.id).where(
                Execution.status == "queued",
                sa.func.coalesce(Execution.enqueued_at, Execution.created_at) < stale,
            )
        ).all()
    for row in queued:
        counts["requeued"] += _resend(engine, celery, row.id, now, stale)
    if any(counts.values()):
        log.info("reaper: %s", counts)
    return counts


def _aware(value: datetime) -> datetime:  # SQLite hands back naive datetimes; they are UTC
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _close(
    engine: SAEngine, settings: Settings, execution_id: str, status: str, error: str, strategy: str | None
) -> int:
    with engine.begin() as conn:
        closed = conn.execute(
            sa.update(Execution)
            .where(
                Execution.id == execution_id,
                Execution.status == "running",
                Execution.lease_expires_at < utcnow(),
            )
            .values(status=status, error=error, finished_at=utcnow(), lease_expires_at=None)
        ).rowcount
    if closed:
        announce_stopped(settings.celery_broker_url, execution_id)
        metrics.execution_finished(status, strategy)
    return closed


def _resend(engine: SAEngine, celery: Celery, execution_id: str, now: datetime, sent_before: datetime) -> int:
    """Send the execution again, unless another reaper did since `sent_before`: one message per round
    for the whole fleet, however many workers run a reaper."""
    with engine.begin() as conn:
        taken = conn.execute(
            sa.update(Execution)
            .where(
                Execution.id == execution_id,
                sa.or_(Execution.enqueued_at.is_(None), Execution.enqueued_at < sent_before),
            )
            .values(enqueued_at=now)
        ).rowcount
    if taken:
        celery.send_task(RUN_EXECUTION_TASK, args=[execution_id], queue=ROOT_QUEUE)
    return taken


class Reaper(threading.Thread):
    """Calls `reap_once` every `interval` seconds until the process exits."""

    def __init__(self, engine: SAEngine, celery: Celery, settings: Settings) -> None:
        super().__init__(name="rlm-reaper", daemon=True)
        self.engine, self.celery, self.settings = engine, celery, settings
        self.stopped = threading.Event()

    def run(self) -> None:
        last_prune = 0.0
        while not self.stopped.wait(self.settings.reaper_interval):
            try:
                reap_once(self.engine, self.celery, self.settings)
            except Exception as exc:  # the database or broker may be restarting; try next round
                log.warning("reaper round failed: %s", exc)
            if self.settings.retention_days is not None and time.monotonic() - last_prune >= PRUNE_EVERY_SECONDS:
                last_prune = time.monotonic()
                try:  # every worker may do it: a prune finding nothing to delete is cheap
                    log.info("retention: %s", prune(self.engine, self.settings.retention_days).summary())
                except Exception as exc:
                    log.warning("retention prune failed: %s", type(exc).__name__)
