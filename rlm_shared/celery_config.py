"""The Celery configuration every process uses: the worker that consumes the queues and the API
that sends to them build their Celery apps from `celery_settings`, so routes, serializers and
acknowledgement rules cannot differ between them.
"""

from __future__ import annotations

from typing import Any

from rlm_shared.config import Settings
from rlm_shared.queues import LLM_CALLS_TASK, LLM_QUEUE, ROOT_QUEUE, RUN_EXECUTION_TASK


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
        # The sweep that redelivers unacked messages runs every tenth of the timeout (kombu's
        # default is ~100 s whatever the timeout); a redelivered, finished execution is dropped.
        "broker_transport_options": {
            "visibility_timeout": visibility,
            "unacked_restore_interval": max(1, min(60, visibility // 10)),
            "unacked_restore_throttle": 1,
            # Task bodies are JSON text: kombu's default base64 wrapping made every sub-call
            # message a third bigger and cost an encode in the root and a decode in the worker.
            "body_encoding": "utf-8",
        },
        "result_backend_transport_options": {"retry_policy": {"timeout": 5.0}},
        "result_expires": 3600,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_track_started": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_hijack_root_logger": False,
        "imports": ("rlm_worker.tasks",),
    }


def survive_broker_restarts() -> None:
    """Keep a worker alive when the Redis broker drops while acks_late tasks run (kombu 5.7).

    After a lost connection the consumer's old channel is closed, and later the running task is
    acknowledged on it, after its transport has already let go of the connection parameters.
    kombu then raises AttributeError, which Celery treats as unrecoverable: the worker exits. A
    detached channel now raises a broker connection error instead, which Celery handles (it logs
    "Couldn't ack" and carries on). The unacknowledged message stays in Redis's unacked set and
    comes back after the visibility timeout, where the claim (root) or the trace (leaf) drops it.
    """
    from kombu.transport import redis as kombu_redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    original = kombu_redis.Channel._connparams
    if getattr(original, "rlm_survives_restarts", False):
        return

    def connparams(self: Any, asynchronous: bool = False) -> Any:
        transport = getattr(self, "connection", None)
        if transport is None or transport.client is None:
            raise RedisConnectionError("this broker channel was closed when the connection dropped")
        return original(self, asynchronous=asynchronous)

    connparams.rlm_survives_restarts = True  # type: ignore[attr-defined]
    kombu_redis.Channel._connparams = connparams
