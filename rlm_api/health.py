"""Reachability of what the API depends on: the database, the broker, live workers per queue.

Each probe has a short timeout, so `/api/health` answers within a few seconds even when a service
hangs; failures report the exception's class only (messages can carry URLs with passwords).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from celery import Celery

from rlm_api.database import db
from rlm_shared.queues import LLM_QUEUE, ROOT_QUEUE

QUEUES = (ROOT_QUEUE, LLM_QUEUE)
BROKER_TIMEOUT = 1.5
INSPECT_TIMEOUT = 1.0


def _failed(exc: Exception) -> dict[str, Any]:
    return {"ok": False, "detail": f"unreachable ({type(exc).__name__})"}


def database_health() -> dict[str, Any]:
    try:
        with db.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        return _failed(exc)
    return {"ok": True, "detail": db.engine.dialect.name}


def broker_health(celery: Celery) -> dict[str, Any]:
    try:
        with celery.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT)
    except Exception as exc:
        return _failed(exc)
    return {"ok": True, "detail": None}


def workers_per_queue(celery: Celery) -> dict[str, int]:
    """Workers that answered `active_queues` within the timeout, counted per queue they consume."""
    counts = dict.fromkeys(QUEUES, 0)
    try:
        with celery.connection_for_read() as conn:
            replies = celery.control.inspect(timeout=INSPECT_TIMEOUT, connection=conn).active_queues() or {}
    except Exception:
        return counts
    for queues in replies.values():
        for queue in queues or []:
            name = queue.get("name") if isinstance(queue, dict) else None
            if name:
                counts[name] = counts.get(name, 0) + 1
    return counts


def health_report(dispatch: str, celery: Celery) -> tuple[dict[str, Any], int]:
    """The report and its HTTP status: 503 when the database or the broker is unreachable."""
    database = database_health()
    if dispatch == "embedded":
        broker: dict[str, Any] = {"ok": True, "detail": "not used in embedded mode"}
        workers: dict[str, int] = {}
    else:
        broker = broker_health(celery)
        workers = workers_per_queue(celery) if broker["ok"] else dict.fromkeys(QUEUES, 0)
    if not (database["ok"] and broker["ok"]):
        status = "down"
    elif dispatch != "embedded" and not all(workers.get(q) for q in QUEUES):
        status = "degraded"
    else:
        status = "ok"
    report = {
        "status": status,
        "dispatch": dispatch,
        "database": database,
        "broker": broker,
        "workers": workers,
    }
    return report, 503 if status == "down" else 200
