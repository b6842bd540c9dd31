"""A Celery worker's metrics: multiprocess files for its pool, one `/metrics` port for the worker.

Each worker serves its own port (WORKER_METRICS_PORT) rather than pushing to the API: Prometheus
then sees every worker as a target of its own (`up` says when one is gone, Kubernetes pod
discovery finds them), nothing has to forget a dead worker's pushed values, and the API is not on
the path of every worker's numbers. The main process serves the port; its prefork children write
their values to the shared multiprocess directory, which one scrape sums.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from celery.signals import worker_init, worker_process_shutdown, worker_ready

from rlm_shared.config import get_settings
from rlm_worker import metrics

log = logging.getLogger("rlm.metrics")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def bearer_protected(app: WsgiApp, token: str | None, open_without_token: bool = False) -> WsgiApp:
    """`app`, answering 401 unless the request carries `Authorization: Bearer <token>`. Without a
    token it answers only when the operator opted out (METRICS_OPEN), else 401 to everyone."""
    if not token and open_without_token:
        return app
    expected = f"Bearer {token}".encode() if token else None

    def protected(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        sent = environ.get("HTTP_AUTHORIZATION", "").encode()
        if expected is not None and hmac.compare_digest(sent, expected):
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [("Content-Type", "application/json"), ("WWW-Authenticate", 'Bearer realm="metrics"')],
        )
        return [
            b'{"error": {"code": "unauthorized", "message": "send Authorization: Bearer <METRICS_TOKEN>"}}'
        ]

    return protected


def serve_metrics(port: int, token: str | None, host: str = "0.0.0.0", open_without_token: bool = False) -> Any:
    """Serve this worker's metrics on `host:port` from a daemon thread; returns the server."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds: no log
            pass

    app = bearer_protected(make_wsgi_app(metrics.exposition_registry()), token, open_without_token)
    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, name="rlm-metrics", daemon=True).start()
    return server


def _multiprocess_files(**_: Any) -> None:
    """Before the pool exists: its processes must write their values where the scrape reads."""
    if get_settings().metrics_enabled:
        metrics.use_multiprocess_dir()


def _start_server(**_: Any) -> None:
    settings = get_settings()
    if not settings.metrics_enabled or not settings.worker_metrics_port:
        return
    try:
        serve_metrics(
            settings.worker_metrics_port, settings.metrics_token, open_without_token=settings.metrics_open
        )
    except OSError as exc:  # a port in use must not stop the worker from working
        log.error("metrics: cannot listen on port %s: %s", settings.worker_metrics_port, exc)
        return
    log.info("metrics: serving /metrics on port %s", settings.worker_metrics_port)


def _process_ended(**_: Any) -> None:
    """A pool process exits: its live gauges (sandboxes) stop counting."""
    metrics.mark_process_dead(os.getpid())


def connect_worker_metrics() -> None:
    """Connect the signal handlers (idempotent: Celery keeps one per function)."""
    worker_init.connect(_multiprocess_files, weak=False)
    worker_ready.connect(_start_server, weak=False)
    worker_process_shutdown.connect(_process_ended, weak=False)
