"""Execution leases: a running execution belongs to the attempt that renews its lease.

Claiming is one atomic UPDATE, so of two deliveries of the same execution (a broker redelivery,
a reaper's re-enqueue) exactly one runs; the other sees a live lease or a finished status and drops.
Each claim starts a new attempt; the heartbeat renews only while its attempt is still the current
one, so an attempt that was taken over notices it and stops.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine as SAEngine

from rlm_shared.models import Execution
from rlm_worker.engine.types import utcnow

log = logging.getLogger("rlm.lease")

_PROCESS_TAG = uuid.uuid4().hex[:6]


def worker_id() -> str:
    """`host:pid:tag` of this process (a forked pool process gets its own pid and tag)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_PROCESS_TAG}"


def _new_tag_after_fork() -> None:
    global _PROCESS_TAG
    _PROCESS_TAG = uuid.uuid4().hex[:6]


os.register_at_fork(after_in_child=_new_tag_after_fork)


def claim(engine: SAEngine, execution_id: str, lease_seconds: float, max_attempts: int) -> int | None:
    """Take the execution if it is queued, or running under a lapsed lease.

    Returns the number of the attempt we now hold, or None if we did not get it.
    """
    now = utcnow()
    with engine.begin() as conn:
        attempt = conn.scalar(
            sa.update(Execution)
            .where(
                Execution.id == execution_id,
                Execution.attempts < max_attempts,
                sa.or_(
                    Execution.status == "queued",
                    sa.and_(Execution.status == "running", Execution.lease_expires_at < now),
                ),
            )
            .values(
                status="running",
                worker=worker_id(),
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                started_at=sa.func.coalesce(Execution.started_at, now),
                attempts=Execution.attempts + 1,
            )
            .returning(Execution.attempts)
        )
    return int(attempt) if attempt is not None else None


def holds_lease(execution_id: str, attempt: int):
    """The WHERE clause that is true while `attempt` is the execution's current, running attempt."""
    return sa.and_(
        Execution.id == execution_id,
        Execution.attempts == attempt,
        Execution.status == "running",
    )


class Heartbeat:
    """Renews our lease every quarter of its length until stopped; notices if we lost it.

    A database outage does not count as a loss: the beat tries again, and if the lease lapsed
    meanwhile another worker may claim it, which the next successful beat then reports.
    """

    def __init__(self, engine: SAEngine, execution_id: str, lease_seconds: float, attempt: int) -> None:
        self.engine, self.execution_id, self.lease_seconds = engine, execution_id, lease_seconds
        self.attempt = attempt
        self._stop = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._run, name=f"lease-{execution_id[:8]}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self.lost and not self._stop.wait(self.lease_seconds / 4):
            try:
                with self.engine.begin() as conn:
                    renewed = conn.execute(
                        sa.update(Execution)
                        .where(holds_lease(self.execution_id, self.attempt))
                        .values(lease_expires_at=utcnow() + timedelta(seconds=self.lease_seconds))
                    ).rowcount
            except Exception as exc:  # the database may be restarting; the next beat tries again
                log.warning("execution %s: lease renewal failed (%s); retrying", self.execution_id, exc)
                continue
            if renewed == 0:
                self.lost = True
