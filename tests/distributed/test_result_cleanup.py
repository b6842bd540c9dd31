"""A sub-call's result is deleted from the backend, but only once the next calls are out, so the
delete is never between an answer and the program waiting for it."""

from __future__ import annotations

import redis

from rlm_worker.dispatchers import CeleryDispatcher
from rlm_worker.engine.types import LLMCall
from tests.distributed.conftest import BACKEND_DB
from tests.support.services import REDIS_HOST, REDIS_PORT


def _call(execution_id: str, seq: int) -> LLMCall:
    return LLMCall(
        execution_id,
        f"cleanup{seq:024d}",
        None,
        f"000000.{seq:06d}",
        1,
        seq,
        "openai/scripted-sub",
        f"p{seq}",
    )


def _result_keys() -> set[str]:
    backend = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=BACKEND_DB, decode_responses=True)
    return {key.removeprefix("celery-task-meta-") for key in backend.keys("celery-task-meta-*")}


def test_an_answered_result_is_deleted_when_the_next_calls_are_sent(scale_app, scale_workers, scale_client):
    scale_workers.start("rlm.llm", "threads", 4, "llm")
    execution_id = scale_client.post("/api/execute", json={"user_query": "q", "context": "c"}).json[
        "execution_id"
    ]
    dispatcher = CeleryDispatcher(scale_app.extensions["celery"])

    first = dispatcher.run_llm_calls([_call(execution_id, 1)], timeout=30)
    assert first[0].error is None
    (first_task,) = _result_keys()  # kept for now: deleting it would delay the answer

    second = dispatcher.run_llm_calls([_call(execution_id, 2)], timeout=30)
    assert second[0].error is None
    keys = _result_keys()
    assert first_task not in keys and len(keys) == 1  # the first went when the second was sent
