"""Structured logs: one JSON object per line, the execution and node ids on it, no secrets in it."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest

from rlm_worker import logging_setup
from rlm_worker.logging_setup import bound_to, configure_logging, secret_values


@pytest.fixture()
def captured(monkeypatch):
    """Root logging into a buffer for one test, then put back as it was."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-abcdef123456")
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "admin:hunter2-flower")
    monkeypatch.setenv("DATABASE_URL", "postgresql://rlm:pg-pass-9876@db/rlm")
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buffer = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=buffer)
    yield buffer
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_each_event_is_one_json_line_with_ids(captured):
    log = logging.getLogger("rlm.test")
    with bound_to("exec-1", "node-7"):
        log.info("sub-call %s done", "3", extra={"queue": "rlm.llm"})
    log.warning("outside any execution")
    log.info("explicit ids win", extra={"execution_id": "exec-2", "node_id": "node-9"})

    first, second, third = lines(captured)
    assert (
        first["message"] == "sub-call 3 done" and first["level"] == "INFO" and first["logger"] == "rlm.test"
    )
    assert (first["execution_id"], first["node_id"], first["queue"]) == ("exec-1", "node-7", "rlm.llm")
    assert second["execution_id"] is None and second["node_id"] is None
    assert (third["execution_id"], third["node_id"]) == ("exec-2", "node-9")


def test_secrets_from_the_environment_never_reach_a_line(captured):
    log = logging.getLogger("rlm.test")
    log.error("calling with key sk-live-abcdef123456 as admin:hunter2-flower")
    log.info("connecting to postgresql://rlm:pg-pass-9876@db/rlm")
    try:
        raise RuntimeError("auth failed for sk-live-abcdef123456")
    except RuntimeError:
        log.exception("model call failed")
    text = captured.getvalue()
    for secret in ("sk-live-abcdef123456", "hunter2-flower", "pg-pass-9876"):
        assert secret not in text
    assert text.count("***") >= 4


def test_secret_values_cover_keys_passwords_and_token_lists():
    env = {
        "API_TOKENS": "tok-one-1111, tok-two-2222",
        "FLOWER_BASIC_AUTH": "a:pw-flower-1,b:pw-flower-2",
        "CELERY_BROKER_URL": "redis://:redis-pass-55@cache:6379/0",
        "LLM_API_KEY": "",
    }
    found = set(secret_values(env))
    assert {"tok-one-1111", "tok-two-2222", "pw-flower-1", "pw-flower-2", "redis-pass-55"} <= found
    assert "" not in found


def test_task_signals_bind_the_execution_of_each_task(captured):
    log = logging.getLogger("rlm.task")
    logging_setup._on_task_prerun(task_id="t1", args=["exec-root"])
    log.info("running")
    logging_setup._on_task_postrun(task_id="t1")
    batch = [{"execution_id": "exec-sub", "node_id": "node-1"}]
    logging_setup._on_task_prerun(task_id="t2", args=[batch])
    log.info("calling")
    logging_setup._on_task_postrun(task_id="t2")
    log.info("idle")
    ids = [(e["execution_id"], e["node_id"]) for e in lines(captured)]
    assert ids == [("exec-root", None), ("exec-sub", "node-1"), (None, None)]


LITELLM_LINE = """
import logging, sys
from rlm_worker.logging_setup import configure_logging
if sys.argv[1] == "before":
    import litellm  # noqa: F401 -- imported first: its handler is already on its logger
configure_logging(level="INFO", fmt="text")
import litellm  # noqa: F401,F811 -- imported after: the handler it adds is refused
logging.getLogger("LiteLLM").warning("litellm says %s", "hello")
logging.getLogger("LiteLLM Router").warning("the router says hello")
"""


@pytest.mark.parametrize("imported", ["before", "after"])
def test_litellm_lines_are_printed_once(imported):
    """litellm adds a stderr handler of its own at import; `rlm serve` printed each line twice."""
    done = subprocess.run(
        [sys.executable, "-c", LITELLM_LINE, imported],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert output.count("litellm says hello") == 1, output
    assert output.count("the router says hello") == 1, output
    assert "WARNING LiteLLM: litellm says hello" in done.stderr  # our format, through the root
