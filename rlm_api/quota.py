"""The one quota on active executions (`API_MAX_ACTIVE_EXECUTIONS`), for every way a run is started.

`POST /api/execute`, `/v1/chat/completions`, the MCP tools and the dashboard's form all call
`check_active_quota` just before they store the new execution, inside the transaction that stores
it. On Postgres an advisory lock per token (released when that transaction ends) serialises the
count and the insert, so two requests arriving together cannot both slip under the limit.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from rlm_api.auth import auth_enabled, current_owner, max_active_executions
from rlm_api.database import db
from rlm_shared.models import Execution
from rlm_worker import metrics

ACTIVE_STATUSES = ("queued", "running")
QUOTA_RETRY_SECONDS = 5


class QuotaExceeded(Exception):
    """The calling token already has its limit of executions queued or running."""

    def __init__(self, active: int, limit: int) -> None:
        self.active, self.limit = active, limit
        super().__init__(f"this token has {active} executions queued or running; the limit is {limit}")


def _lock_owner(owner: str) -> None:
    """Hold a per-token transaction lock (Postgres) until the caller commits or rolls back."""
    if db.session.get_bind().dialect.name != "postgresql":
        return  # embedded mode: one process, SQLite serialises writers itself
    key = int.from_bytes(hashlib.sha256(b"rlm-quota:" + owner.encode()).digest()[:8], "big", signed=True)
    db.session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def check_active_quota() -> None:
    """QuotaExceeded if the calling token may not start one more execution now."""
    owner = current_owner()
    if not auth_enabled() or owner is None:
        return
    _lock_owner(owner)
    active = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Execution)
        .where(Execution.owner == owner, Execution.status.in_(ACTIVE_STATUSES))
    )
    limit = max_active_executions()
    if (active or 0) >= limit:
        db.session.rollback()  # releases the lock
        metrics.guard_tripped("api_max_active_executions")
        raise QuotaExceeded(active or 0, limit)
