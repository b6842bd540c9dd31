"""What a sub-call message looks like on the broker: JSON text, not base64 (smaller, no codec), and
a task description (what Flower and logs show) that names ids, never the prompt."""

from __future__ import annotations

import json

from celery import Celery

from rlm_shared.celery_config import celery_settings
from rlm_shared.config import Settings
from rlm_shared.queues import LLM_CALLS_TASK, LLM_QUEUE
from rlm_worker.dispatchers import CeleryDispatcher
from rlm_worker.engine.types import LLMCall
from tests.support.services import REDIS_HOST, REDIS_PORT, flushed_redis

BROKER_DB = 12


def _app() -> Celery:
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}"
    app = Celery("broker-message-test")
    app.conf.update(celery_settings(Settings(celery_broker_url=url, celery_result_backend=url)))
    return app


def test_a_sub_call_message_carries_its_prompt_as_plain_json():
    app = _app()
    call = {"node_id": "n1", "prompt": 'a prompt with ünicode and "quotes"', "model": "openai/m"}
    with flushed_redis(BROKER_DB) as client:
        app.send_task(LLM_CALLS_TASK, args=([call],), queue=LLM_QUEUE)
        raw = client.lindex(LLM_QUEUE, 0)
        app.close()
    envelope = json.loads(raw)
    assert envelope["properties"]["body_encoding"] == "utf-8"
    args, kwargs, _ = json.loads(envelope["body"])  # no base64 layer to take off first
    assert args == [[call]] and kwargs == {}


def test_the_task_description_names_the_calls_not_their_prompts():
    app = _app()
    batch = [
        LLMCall("exec1", f"node{i}", "parent", f"000000.00000{i}", 1, i, "openai/m", f"SECRET-PROMPT-{i}")
        for i in range(3)
    ]
    with flushed_redis(BROKER_DB) as client:
        CeleryDispatcher(app)._send(0, batch)
        envelope = json.loads(client.lindex(LLM_QUEUE, 0))
        app.close()
    assert envelope["headers"]["argsrepr"] == "execution exec1: 3 call(s) from node0"
    assert "SECRET-PROMPT" not in json.dumps(envelope["headers"])
    args, _, _ = json.loads(envelope["body"])
    assert [c["prompt"] for c in args[0]] == ["SECRET-PROMPT-0", "SECRET-PROMPT-1", "SECRET-PROMPT-2"]
