"""Metrics of one process (`rlm serve`, embedded dispatch): plain in-process values, no
multiprocess directory; the route's settings; the queue depths read from a broker nobody consumes."""

from __future__ import annotations

import os
from email.message import EmailMessage

import pytest
import redis
from kombu import Connection

from rlm_shared.config import get_settings
from rlm_shared.queues import LLM_CALLS_TASK, LLM_QUEUE, ROOT_QUEUE, RUN_EXECUTION_TASK
from rlm_worker import services
from tests.api.conftest import make_app
from tests.metrics.conftest import parse, value
from tests.support.services import REDIS_HOST, REDIS_PORT, migrated_database, wait_for

QUEUE_DB = 26
CONTEXT = "filler. " * 500 + "The secret code is QX-4417. " + "more filler. " * 500


@pytest.fixture(scope="module")
def db_url():
    with migrated_database("rlm_metrics_local") as url:
        yield url


@pytest.fixture()
def embedded_model(scripted, monkeypatch):
    """The embedded runner's model client comes from the environment, as a worker's does."""
    monkeypatch.setenv("LLM_API_BASE", scripted.url)
    monkeypatch.setenv("LLM_API_KEY", "scripted")
    for cached in (get_settings, services.model_client):
        cached.cache_clear()
    yield
    for cached in (get_settings, services.model_client):
        cached.cache_clear()


def scrape(client, **headers) -> dict:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.data[:300]
    assert_one_media_type(response.headers["Content-Type"])
    return parse(response.get_data(as_text=True))


def assert_one_media_type(header: str) -> None:
    """Prometheus 3 refuses a Content-Type that does not parse as one media type: each parameter
    once (`text/plain; version=1.0.0; charset=utf-8; charset=utf-8` does not)."""
    message = EmailMessage()
    message["Content-Type"] = header
    assert message.get_content_type() == "text/plain", header
    # The parser keeps the last of a repeated parameter: count the names as written.
    names = [part.split("=", 1)[0].strip().lower() for part in header.split(";")[1:]]
    assert len(names) == len(set(names)) and "charset" in names, header
    assert message.get_param("version"), header


def test_an_embedded_execution_is_counted_in_process(db_url, scripted, embedded_model):
    app = make_app(
        db_url,
        config={"RLM_DISPATCH": "embedded"},
        llm_api_base=scripted.url,
        llm_api_key="scripted",
        metrics_open=True,
    )
    client = app.test_client()
    before = scrape(client)
    response = client.post(
        "/api/execute", json={"user_query": "What is the secret code?", "context": CONTEXT}
    )
    assert response.status_code == 202, response.get_json()
    url = f"/api/executions/{response.get_json()['id']}"
    record = wait_for(
        lambda: (r := client.get(url).get_json())["status"] in ("succeeded", "failed") and r,
        timeout=120,
        what="the embedded execution",
    )
    assert record["status"] == "succeeded", record
    after = scrape(client)
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    model = "openai/scripted-root"  # no SUB_MODEL: sub-calls use DEFAULT_MODEL
    assert grew("rlm_executions_total", status="succeeded", strategy="none") == 1
    assert (
        grew("rlm_subcall_duration_seconds_count", model=model, queue="in-process")
        == record["sub_calls"]
        == 1
    )
    assert grew("rlm_model_tokens_total", model=model, direction="input") == record["total_input_tokens"]
    assert grew("rlm_model_tokens_total", model=model, direction="output") == record["total_output_tokens"]
    assert value(after, "rlm_live_sandboxes") == 0
    route = "/api/executions/<execution_id>"
    assert grew("rlm_api_request_duration_seconds_count", route=route, method="GET", status="200") >= 1


def test_metrics_route_follows_its_settings(db_url):
    off = make_app(db_url, metrics_enabled=False).test_client()
    assert off.get("/metrics").status_code == 404
    locked = make_app(db_url, metrics_token="s3cret-metrics").test_client()
    refused = locked.get("/metrics")
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "unauthorized"
    assert locked.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert scrape(locked, Authorization="Bearer s3cret-metrics")
    # Without a token, only an operator's explicit opt-out serves them (issue 30).
    closed = make_app(db_url).test_client().get("/metrics")
    assert closed.status_code == 401 and "METRICS_TOKEN" in closed.get_json()["error"]["message"]
    # A 404 is one series, whatever path was asked for.
    open_client = make_app(db_url, metrics_open=True).test_client()
    for path in ("/no/such/page-1", "/no/such/page-2"):
        open_client.get(path)
    samples = scrape(open_client)
    assert (
        value(
            samples, "rlm_api_request_duration_seconds_count", route="(unmatched)", method="GET", status="404"
        )
        >= 2
    )
    assert not any("page-1" in str(labels) for _, labels in samples)


def test_queue_depth_counts_messages_waiting_in_redis(db_url):
    broker = f"redis://{REDIS_HOST}:{REDIS_PORT}/{QUEUE_DB}"
    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=QUEUE_DB).flushdb()
    app = make_app(db_url, celery_broker_url=broker, metrics_open=True)
    client = app.test_client()
    celery = app.extensions["celery"]
    assert value(scrape(client), "rlm_queue_depth", queue=ROOT_QUEUE) == 0
    with Connection(broker) as connection:  # nobody consumes this database
        for _ in range(3):
            celery.send_task(RUN_EXECUTION_TASK, ["x"], queue=ROOT_QUEUE, connection=connection)
        celery.send_task(RUN_EXECUTION_TASK, ["y"], queue=ROOT_QUEUE, priority=7, connection=connection)
        for _ in range(2):
            celery.send_task(LLM_CALLS_TASK, [[]], queue=LLM_QUEUE, connection=connection)
    samples = scrape(client)
    assert value(samples, "rlm_queue_depth", queue=ROOT_QUEUE) == 4  # the priority list too
    assert value(samples, "rlm_queue_depth", queue=LLM_QUEUE) == 2
    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=QUEUE_DB).flushdb()
    assert value(scrape(client), "rlm_queue_depth", queue=ROOT_QUEUE) == 0


def test_an_unreachable_broker_leaves_the_scrape_working(db_url):
    client = make_app(db_url, celery_broker_url="redis://127.0.0.1:9/0", metrics_open=True).test_client()
    samples = scrape(client)
    assert ("rlm_queue_depth", (("queue", ROOT_QUEUE),)) not in samples


def test_model_labels_are_the_configured_names_and_other(db_url):
    """A request may name any `openai/<...>` model: each would be a new series (and a NUL breaks
    the exposition format). Only configured names are labels; the rest count as `other`."""
    from rlm_worker import metrics

    client = make_app(
        db_url, metrics_open=True, model_allowlist="openai/scripted-*,openai/listed-model"
    ).test_client()
    before = scrape(client)
    for model in ("openai/listed-model", "openai/scripted-root", "openai/x\x00y", "openai/unlisted-1"):
        metrics.model_replied(model, 3, 2, 0.0)
    metrics.model_failed("openai/unlisted-2", "Timeout")
    after = scrape(client)

    def grew(**labels: str) -> float:
        return value(after, "rlm_model_tokens_total", **labels) - value(before, "rlm_model_tokens_total", **labels)

    assert grew(model="openai/listed-model", direction="input") == 3  # an exact allow-list entry
    assert grew(model="openai/scripted-root", direction="input") == 3  # DEFAULT_MODEL
    assert grew(model="other", direction="input") == 6  # a pattern's match is not a name
    assert value(after, "rlm_model_errors_total", model="other", kind="Timeout") >= 1
    text = client.get("/metrics").get_data(as_text=True)
    assert "\x00" not in text and "unlisted" not in text and "x\\x00y" not in text
