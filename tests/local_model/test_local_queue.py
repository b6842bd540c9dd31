"""The local model is served, not stampeded: calls beyond the server's slots wait in this process,
and a stop cancels them (waiting or being computed) so the server is free again at once."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

from rlm_shared.strategies.common import EXTRACT_PROMPT
from rlm_worker.engine import local_model
from rlm_worker.engine.local_model import LocalModelQueue
from rlm_worker.engine.memory_sink import InMemoryTraceSink
from rlm_worker.engine.subcall import execute_llm_calls_until_stopped
from rlm_worker.engine.types import LLMCall
from tests.local_model.conftest import MODEL
from tests.support.services import wait_for

PASSAGE = "The relief boat reached the island on the ninth of March, two days late, in a gale. " * 6


def calls(count: int, run_id: str) -> list[LLMCall]:
    return [
        LLMCall(
            run_id,
            f"{run_id}-{i}",
            run_id,
            f"{i:04d}",
            1,
            i,
            MODEL,
            EXTRACT_PROMPT.format(question=f"When did boat {i} reach the island?", text=PASSAGE),
        )
        for i in range(count)
    ]


def server_root() -> str:
    return local_model.server().api_base.removesuffix("/v1")


def deferred_at_server() -> int:
    """Requests llama.cpp holds because every slot is busy (its /metrics counter)."""
    with urllib.request.urlopen(server_root() + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return int(
        float(
            next(
                line.split()[-1]
                for line in text.splitlines()
                if "requests_deferred" in line and not line.startswith("#")
            )
        )
    )


def busy_slots() -> int:
    with urllib.request.urlopen(server_root() + "/slots", timeout=5) as response:
        return sum(1 for slot in json.loads(response.read()) if slot.get("is_processing"))


def test_calls_beyond_the_slots_wait_here_and_every_one_is_answered(local_client):
    slots = local_model.server().settings.slots
    sink = InMemoryTraceSink()
    seen_deferred: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen_deferred.append(deferred_at_server())
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        batch = calls(slots + 2, "queue")
        outcomes = execute_llm_calls_until_stopped(batch, LocalModelQueue(local_client), sink, lambda: None)
    finally:
        done.set()
        watcher.join()
    assert all(o.error is None and o.text for o in outcomes), [o.error for o in outcomes]
    assert seen_deferred and max(seen_deferred) == 0  # llama.cpp never held a waiting request
    assert {sink.nodes[c.node_id].status for c in batch} == {"succeeded"}


def test_a_stop_cancels_waiting_and_running_calls_and_frees_the_server(local_client):
    sink = InMemoryTraceSink()
    stop = threading.Event()
    batch = calls(6, "stop")
    threading.Timer(0.5, stop.set).start()  # mid-way through the first call
    started = time.monotonic()
    outcomes = execute_llm_calls_until_stopped(
        batch, LocalModelQueue(local_client), sink, lambda: "stopped by the test" if stop.is_set() else None
    )
    assert time.monotonic() - started < 3.0
    cancelled = [o for o in outcomes if not o.answered]
    assert len(cancelled) >= 6 - local_model.server().settings.slots
    assert all(o.error == "sub-call cancelled: stopped by the test" for o in cancelled)
    assert {sink.nodes[o.node_id].status for o in cancelled} == {"cancelled"}
    # The request being computed was closed: llama.cpp drops it after its current decode step
    # (a whole prompt is one step: seconds on a loaded machine) instead of writing its answer.
    wait_for(lambda: busy_slots() == 0, 30, what="the local model's slots to be free")
