"""A batch of leaf calls on the process's event loop: calls overlap, errors stay per call, every call
gets its trace node, limits still hold, and a forked child gets a loop of its own."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid

import redis

from rlm_worker.engine.llm import LiteLLMClient
from rlm_worker.engine.memory_sink import InMemoryTraceSink
from rlm_worker.engine.subcall import execute_llm_calls
from rlm_worker.engine.types import LLMCall
from rlm_worker.rate_limit import (
    ConcurrencyLimitedClient,
    ConcurrencyLimiter,
    ModelRateLimiter,
    RateLimitedClient,
)
from tests.support.scripted_model import ScriptedError, user_text
from tests.support.services import REDIS_HOST, REDIS_PORT

REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/6"
MODEL = "openai/scripted-sub"


def calls(prompts: list[str], model: str = MODEL) -> list[LLMCall]:
    batch = uuid.uuid4().hex[:8]
    return [
        LLMCall(
            execution_id="exec1",
            node_id=f"{batch}-{i}",
            parent_id="root",
            path=f"0001.{i:04d}",
            depth=1,
            seq=i,
            model=model,
            prompt=prompt,
        )
        for i, prompt in enumerate(prompts)
    ]


def client_for(server, **kwargs) -> LiteLLMClient:
    return LiteLLMClient(api_base=server.url, api_key="scripted", timeout=10, **kwargs)


def echo_or_fail(request) -> str:
    text = user_text(request)
    if text.startswith("FAIL"):
        raise ScriptedError(400, f"refused {text}")
    return f"echo {text}"


class ThreadRecordingClient(LiteLLMClient):
    """The real client, noting which thread each call of each path ran on."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.threads: list[tuple[str, str]] = []

    def complete(self, model, messages):
        self.threads.append(("complete", threading.current_thread().name))
        return super().complete(model, messages)

    async def acomplete(self, model, messages):
        self.threads.append(("acomplete", threading.current_thread().name))
        return await super().acomplete(model, messages)


def test_a_batch_runs_all_at_once_on_the_loop(scripted):
    scripted.latency = 0.3
    scripted.responder = echo_or_fail
    client = ThreadRecordingClient(api_base=scripted.url, api_key="scripted", timeout=10)
    outcomes = execute_llm_calls(calls([f"p{i}" for i in range(8)]), client, InMemoryTraceSink())
    assert [o.text for o in outcomes] == [f"echo p{i}" for i in range(8)]
    assert scripted.stats()["peak_concurrency"] == 8
    assert client.threads == [("acomplete", "rlm-subcall-loop")] * 8


def test_a_lone_call_runs_in_the_calling_thread(scripted):
    """No hop to the loop for one call: a sequential chain would pay it at every step."""
    scripted.responder = echo_or_fail
    client = ThreadRecordingClient(api_base=scripted.url, api_key="scripted", timeout=10)
    sink = InMemoryTraceSink()
    batch = calls(["only"])
    outcomes = execute_llm_calls(batch, client, sink)
    assert [o.text for o in outcomes] == ["echo only"]
    assert client.threads == [("complete", threading.current_thread().name)]
    assert sink.nodes[batch[0].node_id].status == "succeeded"


def test_errors_stay_with_their_call_and_every_call_gets_its_node(scripted):
    scripted.responder = echo_or_fail
    sink = InMemoryTraceSink()
    batch = calls(["a", "FAIL b", "c", "FAIL d"])
    outcomes = execute_llm_calls(batch, client_for(scripted, max_retries=3), sink)

    assert [o.text for o in outcomes] == ["echo a", None, "echo c", None]
    assert "refused FAIL b" in outcomes[1].error and "refused FAIL d" in outcomes[3].error
    assert scripted.stats()["total_calls"] == 4  # a 400 is not retried
    nodes = [sink.nodes[c.node_id] for c in batch]
    assert [n.status for n in nodes] == ["succeeded", "failed", "succeeded", "failed"]
    assert nodes[0].response == "echo a" and nodes[0].input_tokens > 0 and nodes[0].finished_at
    assert nodes[1].error == outcomes[1].error and nodes[1].finished_at


def test_batches_of_many_caller_threads_share_the_loop(scripted):
    """The Celery llm worker: many task threads, each with its own batch, at once."""
    scripted.latency = 0.5
    scripted.responder = echo_or_fail
    client, results = client_for(scripted), {}

    def one_task(t: int) -> None:
        outcomes = execute_llm_calls(calls([f"t{t}-{i}" for i in range(8)]), client, InMemoryTraceSink())
        results[t] = [o.text for o in outcomes]

    threads = [threading.Thread(target=one_task, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == {t: [f"echo t{t}-{i}" for i in range(8)] for t in range(4)}
    assert scripted.stats()["peak_concurrency"] > 8  # batches overlapped, not one after another


def test_the_fleet_wide_cap_holds_on_the_async_path(scripted):
    scripted.latency = 0.2
    scripted.responder = echo_or_fail
    key = f"rlm:test-slots:{uuid.uuid4().hex[:8]}"
    capped = ConcurrencyLimitedClient(client_for(scripted), ConcurrencyLimiter(REDIS_URL, 3, 30, key=key))
    outcomes = execute_llm_calls(calls([f"p{i}" for i in range(8)]), capped, InMemoryTraceSink())
    assert [o.error for o in outcomes] == [None] * 8
    assert scripted.stats()["peak_concurrency"] == 3
    assert redis.Redis.from_url(REDIS_URL).zcard(key) == 0  # every slot given back


def test_a_model_rate_limit_holds_on_the_async_path(scripted):
    scripted.responder = echo_or_fail
    model = f"openai/rate-{uuid.uuid4().hex[:8]}"
    limited = RateLimitedClient(client_for(scripted), ModelRateLimiter(REDIS_URL, {model: 600}, burst=2))
    started = time.monotonic()
    outcomes = execute_llm_calls(
        calls([f"p{i}" for i in range(8)], model=model), limited, InMemoryTraceSink()
    )
    seconds = time.monotonic() - started
    assert [o.error for o in outcomes] == [None] * 8
    assert 0.45 <= seconds < 5, seconds  # a burst of 3, then the other 5 at 100 ms apart


def _batch_in_child(url: str, queue) -> None:
    outcomes = execute_llm_calls(
        calls(["from the child"]),
        LiteLLMClient(api_base=url, api_key="scripted", timeout=10),
        InMemoryTraceSink(),
    )
    queue.put(outcomes[0].text)


def test_a_forked_child_runs_its_batches_on_a_loop_of_its_own(scripted):
    """A Celery prefork child inherits the parent's loop object but not the thread that runs it."""
    scripted.responder = echo_or_fail
    assert (
        execute_llm_calls(calls(["parent"]), client_for(scripted), InMemoryTraceSink())[0].text
        == "echo parent"
    )
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_batch_in_child, args=(scripted.url, queue))
    child.start()
    try:
        assert queue.get(timeout=30) == "echo from the child"
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0


def test_a_call_waiting_for_a_slot_is_queued_then_runs_from_when_it_got_one(scripted):
    """The trace tells a local model's slot wait (`queued_at` → `started_at`) from its run."""
    import asyncio
    import time as clock

    from rlm_worker.engine import call_clock
    from rlm_worker.engine.subcall import execute_llm_calls_until_stopped

    class OneSlot:
        """A client with one slot, as the local model's queue: the second call waits 0.3 s."""

        def __init__(self, inner):
            self.inner, self.gate = inner, None

        def waits_for_slot(self, model):
            return True

        def complete(self, model, messages):
            return self.inner.complete(model, messages)

        async def acomplete(self, model, messages):
            self.gate = self.gate or asyncio.Semaphore(1)
            async with self.gate:
                call_clock.started()
                await asyncio.sleep(0.3)
                return await self.inner.acomplete(model, messages)

    sink = InMemoryTraceSink()
    written = []
    original = sink.nodes_recorded
    sink.nodes_recorded = lambda nodes: (
        written.extend((n.status, n.started_at) for n in nodes),
        original(nodes),
    )
    started = clock.monotonic()
    execute_llm_calls_until_stopped(calls(["a", "b"]), OneSlot(client_for(scripted)), sink, lambda: None)
    assert clock.monotonic() - started >= 0.6
    assert written[:2] == [("queued", None), ("queued", None)]  # sent, not yet running
    nodes = sorted((n for n in sink.nodes.values() if n.kind == "llm_call"), key=lambda n: n.started_at)
    assert all(n.status == "succeeded" and n.queued_at is not None for n in nodes)
    waited = (nodes[1].started_at - nodes[1].queued_at).total_seconds()
    assert waited >= 0.25 and (nodes[0].started_at - nodes[0].queued_at).total_seconds() < 0.2
