"""What a sub-call message looks like on the broker: JSON text, not base64 (smaller, no codec)."""

from __future__ import annotations

import json

from celery import Celery

from rlm_worker.celery_app import celery_settings
from rlm_worker.config import Settings
from rlm_worker.queues import LLM_CALLS_TASK, LLM_QUEUE
from tests.support.services import REDIS_HOST, REDIS_PORT, flushed_redis

BROKER_DB = 12


def test_a_sub_call_message_carries_its_prompt_as_plain_json():
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}"
    config = celery_settings(Settings(celery_broker_url=url, celery_result_backend=url))
    app = Celery("broker-message-test")
    app.conf.update(config)
    call = {"node_id": "n1", "prompt": 'a prompt with ünicode and "quotes"', "model": "openai/m"}
    with flushed_redis(BROKER_DB) as client:
        app.send_task(LLM_CALLS_TASK, args=([call],), queue=LLM_QUEUE)
        raw = client.lindex(LLM_QUEUE, 0)
        app.close()
    envelope = json.loads(raw)
    assert envelope["properties"]["body_encoding"] == "utf-8"
    args, kwargs, _ = json.loads(envelope["body"])  # no base64 layer to take off first
    assert args == [[call]] and kwargs == {}
