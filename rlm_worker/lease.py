"""Execution leases: a running execution belongs to the worker that renews its lease.

Claiming is one atomic UPDATE, so of two deliveries of the same execution (a broker redelivery,
a reaper's re-enqueue) exactly one runs; the other sees a live lease or a finished status and drops.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine as SAEngine

from rlm_api.models import Execution
from rlm_worker.engine.types import utcnow

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def claim(engine: SAEngine, execution_id: str, lease_seconds: float, max_attempts: int) -> bool:
    """Take the execution if it is queued, or running under a lapsed lease. True if we got it."""
    now = utcnow()
    with engine.begin() as conn:
        result = conn.execute(
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
                worker=WORKER_ID,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                started_at=sa.func.coalesce(Execution.started_at, now),
                attempts=Execution.attempts + 1,
            )
        )
        return result.rowcount == 1


class Heartbeat:
    """Renews our lease every quarter of its length until stopped; notices if we lost it."""

    def __init__(self, engine: SAEngine, execution_id: str, lease_seconds: float) -> None:
        self.engine, self.execution_id, self.lease_seconds = engine, execution_id, lease_seconds
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
        while not self._stop.wait(self.lease_seconds / 4):
            try:
                with self.engine.begin() as conn:
                    renewed = conn.execute(
                        sa.update(Execution)
                        .where(
                            Execution.id == self.execution_id,
                            Execution.worker == WORKER_ID,
                            Execution.status == "running",
                        )
                        .values(lease_expires_at=utcnow() + timedelta(seconds=self.lease_seconds))
                    ).rowcount
                self.lost = self.lost or renewed == 0
            except Exception:  # the database may be restarting; the next beat tries again
                continue
