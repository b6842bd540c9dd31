"""`/metrics` on the API, and the latency of every request by route.

The route label is the URL rule (`/api/executions/<execution_id>`), never the raw path, so one
route is one series however many ids it serves. Under gunicorn every worker process writes to
the multiprocess directory (gunicorn.conf.py chooses it), and any one of them answers a scrape
with the sum. The queue depths are read from the broker at scrape time (distributed mode only).
"""

from __future__ import annotations

import hmac
import time

from flask import Blueprint, Flask, Response, current_app, g, request

from rlm_api.errors import APIError
from rlm_shared.config import Settings
from rlm_shared.queues import LLM_QUEUE, ROOT_QUEUE
from rlm_worker import metrics

bp = Blueprint("metrics", __name__)
#: The route label of a request no rule matched (a 404), so scanners cannot grow the series.
UNMATCHED = "(unmatched)"


def init_metrics(app: Flask, settings: Settings) -> None:
    app.before_request(_start_clock)
    app.after_request(_observe)
    metrics.set_model_names(settings.metric_model_names())  # this app's settings name the models
    if not settings.metrics_enabled:
        return
    extra = []
    if settings.dispatch == "celery" and settings.celery_broker_url.startswith(("redis://", "rediss://")):
        extra.append(metrics.QueueDepthCollector(settings.celery_broker_url, (ROOT_QUEUE, LLM_QUEUE)))
    # Built at the first scrape, not now: a Celery worker builds this app before it chooses
    # its multiprocess directory, and nothing may create a metric before that.
    app.extensions["rlm_metrics"] = {
        "collectors": extra,
        "registry": None,
        "token": settings.metrics_token,
        "open": settings.metrics_open,
    }
    app.register_blueprint(bp)


def _start_clock() -> None:
    g.rlm_request_started = time.perf_counter()


def _observe(response: Response) -> Response:
    started = g.pop("rlm_request_started", None)
    if started is not None:
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        metrics.api_request(route, request.method, response.status_code, time.perf_counter() - started)
    return response


@bp.get("/metrics")
def scrape() -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    state = current_app.extensions["rlm_metrics"]
    token = state["token"]
    if not token and not state["open"]:
        raise APIError(
            401,
            "unauthorized",
            "metrics need a token: set METRICS_TOKEN and send Authorization: Bearer <METRICS_TOKEN> "
            "(or METRICS_OPEN=true to serve them without one)",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    if token:
        sent = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(sent, f"Bearer {token}".encode()):
            raise APIError(
                401,
                "unauthorized",
                "send the metrics token: Authorization: Bearer <METRICS_TOKEN>",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    if state["registry"] is None:
        state["registry"] = metrics.exposition_registry(*state["collectors"])
    return Response(generate_latest(state["registry"]), content_type=CONTENT_TYPE_LATEST)  # as is: one charset
