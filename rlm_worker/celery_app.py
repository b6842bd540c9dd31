"""The Celery adapter's app. `celery -A rlm_worker.celery_app worker -Q rlm.root` points here.

No Flask: a worker process binds a database of its own (`rlm_shared.database`: an engine and a
scoped session over the shared models), disposes its connections after a fork, and removes the
task's session when each task ends, as Superset's worker does. The configuration is the one the
API sends with (`rlm_shared.celery_config`).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from rlm_shared.celery_config import celery_settings, survive_broker_restarts
from rlm_shared.config import get_settings
from rlm_shared.database import OwnDatabase, database

_celery: Celery | None = None


def worker_celery() -> Celery:
    """The worker process's Celery app, built once, with the database bound for its tasks."""
    global _celery
    if _celery is None:
        from celery.signals import task_postrun

        from rlm_shared import tracing
        from rlm_worker.liveness import AliveFile
        from rlm_worker.logging_setup import install_celery_logging

        settings = get_settings()
        database.bind(OwnDatabase(settings.database_url))
        survive_broker_restarts()
        celery = Celery("rlm_worker")
        celery.config_from_object(celery_settings(settings))
        celery.steps["consumer"].add(AliveFile)  # the Kubernetes probes' liveness file
        celery.set_default()
        install_celery_logging()
        task_postrun.connect(_remove_session, weak=False, dispatch_uid="rlm-database-session")
        tracing.setup(None)  # OpenTelemetry, when OTEL_TRACES_EXPORTER asks for it (docs/observability.md)
        _celery = celery
    return _celery


def _remove_session(**_: Any) -> None:
    """A task's session ends with the task: no transaction or object is carried to the next one."""
    database.session.remove()


def __getattr__(name: str) -> Any:
    # `celery -A rlm_worker.celery_app` looks up `celery` (or `app`) here.
    if name in ("celery", "app"):
        return worker_celery()
    raise AttributeError(name)
