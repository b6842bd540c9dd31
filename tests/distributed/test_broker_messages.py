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


def _queued_batch_sizes(calls: int, **dispatcher: int) -> list[int]:
    """Send a fan-out of `calls` with no worker listening (it times out at once) and read the sizes
    of the messages it left on the broker's queue."""
    app = _app()
    batch = [
        LLMCall("exec1", f"node{i}", "parent", f"000000.{i:06d}", 1, i, "openai/m", f"prompt {i}")
        for i in range(calls)
    ]
    with flushed_redis(BROKER_DB) as client:
        outcomes = CeleryDispatcher(app, **dispatcher).run_llm_calls(batch, timeout=0.2)
        raw = client.lrange(LLM_QUEUE, 0, -1)
        app.close()
    assert len(outcomes) == calls and all(o.error for o in outcomes)  # none answered: no worker
    return sorted(len(json.loads(json.loads(m)["body"])[0][0]) for m in raw)


def test_small_fan_outs_send_one_call_a_message():
    assert _queued_batch_sizes(16) == [1] * 16


def test_big_fan_outs_ride_in_fewer_larger_messages():
    # 256 calls: 8 messages of 32 (each message costs CPU whatever it carries); 40: the configured 8.
    assert _queued_batch_sizes(256) == [32] * 8
    assert _queued_batch_sizes(40) == [8] * 5
    assert _queued_batch_sizes(100, batch_size=20) == [20] * 5
    # What is out at once is what counts: 1,000 calls, at most 64 in flight, go 8 to a message.
    assert _queued_batch_sizes(1000, max_inflight=64) == [8] * 8
