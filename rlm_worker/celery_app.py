"""The Celery adapter's app. `celery -A rlm_worker.celery_app worker -Q rlm.root` points here.

Following Flask's Celery pattern: the Flask app is built once per worker process and every task
runs inside its app context, so tasks use the same models and database as the API.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask

from rlm_worker.config import Settings
from rlm_worker.queues import LLM_CALLS_TASK, LLM_QUEUE, ROOT_QUEUE, RUN_EXECUTION_TASK


def celery_settings(settings: Settings) -> dict[str, Any]:
    visibility = settings.broker_visibility_timeout or max(3600, 2 * int(settings.execution_timeout) + 600)
    return {
        "broker_url": settings.celery_broker_url,
        "result_backend": settings.celery_result_backend,
        "task_routes": {
            RUN_EXECUTION_TASK: {"queue": ROOT_QUEUE},
            LLM_CALLS_TASK: {"queue": LLM_QUEUE},
        },
        "task_default_queue": ROOT_QUEUE,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "worker_prefetch_multiplier": 1,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # Above the longest execution, so a long run is not delivered twice; a dead worker's
        # execution is recovered sooner through its lease (rlm_worker/lease.py, reaper.py).
        "broker_transport_options": {"visibility_timeout": visibility},
        "result_backend_transport_options": {"retry_policy": {"timeout": 5.0}},
        "result_expires": 3600,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_track_started": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_hijack_root_logger": False,
        "imports": ("rlm_worker.tasks",),
    }


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(app.config["CELERY"])
    celery.set_default()
    app.extensions["celery"] = celery
    from rlm_worker.logging_setup import install_celery_logging

    install_celery_logging()
    return celery


_flask_app: Flask | None = None


def worker_flask_app() -> Flask:
    """The worker process's Flask app, built once (Superset's pattern)."""
    global _flask_app
    if _flask_app is None:
        from rlm_api import create_app

        _flask_app = create_app()
    return _flask_app


def __getattr__(name: str) -> Any:
    # `celery -A rlm_worker.celery_app` looks up `celery` (or `app`) here.
    if name in ("celery", "app"):
        return worker_flask_app().extensions["celery"]
    raise AttributeError(name)
