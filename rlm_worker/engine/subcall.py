"""Leaf sub-calls: run a batch of model calls concurrently and record one trace node per call.

Shared by every dispatcher (the Celery `rlm.llm` task, the embedded thread pool), so a leaf
call is traced the same way everywhere. A client that can be awaited runs the batch on one
process-wide event loop (litellm's async path costs less CPU a call than its sync path on many
threads); any other client runs on a thread pool.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar, cast

from rlm_worker.engine import call_clock
from rlm_worker.engine.ports import AsyncModelClient, ModelClient, ModelError, TraceSink, supports_async
from rlm_worker.engine.process_local import ProcessLocal
from rlm_worker.engine.types import LLMCall, LLMCallOutcome, ModelReply, TraceNode, utcnow

T = TypeVar("T")

_pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="rlm-subcall")


class _LoopThread:
    """An event loop running forever in a daemon thread, one per process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="rlm-subcall-loop", daemon=True)
        self.thread.start()


_loop_thread = ProcessLocal(_LoopThread)


def _new_node(call: LLMCall) -> TraceNode:
    return TraceNode(
        id=call.node_id,
        execution_id=call.execution_id,
        parent_id=call.parent_id,
        kind="llm_call",
        path=call.path,
        depth=call.depth,
        seq=call.seq,
        model=call.model,
        prompt=call.prompt,
    )


def _sent_node(call: LLMCall, client: ModelClient) -> TraceNode:
    """A call just sent. One the client makes wait for a slot (`waits_for_slot`: a local model's
    few) is `queued` since now, not started (its node says when it ran once it returns); any other
    starts at once: `running`."""
    node = _new_node(call)
    waits = getattr(client, "waits_for_slot", None)
    if waits is not None and waits(call.model):
        node.status, node.queued_at, node.started_at = "queued", utcnow(), None
    return node


def _messages(call: LLMCall) -> list[dict[str, str]]:
    return [{"role": "user", "content": call.prompt}]


def _failed(call: LLMCall, node: TraceNode, exc: Exception) -> LLMCallOutcome:
    # A ModelError carries its own message; anything else is a bug in a provider adapter, named so.
    message = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
    node.status, node.error = "failed", message
    node.finished_at = utcnow()
    return LLMCallOutcome(node_id=call.node_id, text=None, error=message, model=call.model)


def refused_llm_calls(calls: list[LLMCall], reason: str, sink: TraceSink) -> list[LLMCallOutcome]:
    """Calls refused before any dispatch (a model off the allow-list): failed nodes, traced."""
    pairs = [(call, _new_node(call)) for call in calls]
    outcomes = [_failed(call, node, ModelError(reason)) for call, node in pairs]
    sink.nodes_recorded([node for _, node in pairs])
    return outcomes


def _succeeded(call: LLMCall, node: TraceNode, reply: ModelReply) -> LLMCallOutcome:
    node.status = "succeeded"
    node.response = reply.text
    node.input_tokens, node.output_tokens, node.cost_usd = (
        reply.input_tokens,
        reply.output_tokens,
        reply.cost_usd,
    )
    node.finished_at = utcnow()
    return LLMCallOutcome(
        node_id=call.node_id,
        text=reply.text,
        input_tokens=reply.input_tokens,
        output_tokens=reply.output_tokens,
        cost_usd=reply.cost_usd,
        model=reply.model,
    )


def _run_one(call: LLMCall, client: ModelClient) -> tuple[LLMCallOutcome, TraceNode]:
    node = _new_node(call)
    try:
        reply = client.complete(call.model, _messages(call))
    except Exception as exc:  # a failed call must not take the batch down
        return _failed(call, node, exc), node
    return _succeeded(call, node, reply), node


async def _await_one(call: LLMCall, client: AsyncModelClient) -> tuple[LLMCallOutcome, TraceNode]:
    node = _new_node(call)
    call_clock.timing(node)  # a queue inside the client (a local model's slots) moves the start
    try:
        reply = await client.acomplete(call.model, _messages(call))
    except Exception as exc:
        return _failed(call, node, exc), node
    return _succeeded(call, node, reply), node


async def _await_all(
    calls: list[LLMCall], client: AsyncModelClient
) -> list[tuple[LLMCallOutcome, TraceNode]]:
    return list(await asyncio.gather(*(_await_one(call, client) for call in calls)))


def run_on_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on this process's leaf-call loop and wait for it (not from the loop itself)."""
    return asyncio.run_coroutine_threadsafe(coroutine, _loop_thread.get().loop).result()


def _on_loop_thread() -> bool:
    current = _loop_thread.peek()
    return current is not None and threading.current_thread() is current.thread


def _run_batch(calls: list[LLMCall], client: ModelClient) -> list[tuple[LLMCallOutcome, TraceNode]]:
    # A lone call runs in the calling thread: the hop to the loop cost ~0.4 ms of its latency
    # (a sequential chain pays it every step), and there is nothing to share the loop with.
    if len(calls) == 1:
        return [_run_one(calls[0], client)]
    if supports_async(client) and not _on_loop_thread():  # waiting from the loop itself would deadlock
        return run_on_loop(_await_all(calls, cast(AsyncModelClient, client)))
    return list(_pool.map(lambda c: _run_one(c, client), calls))


def execute_llm_calls(calls: list[LLMCall], client: ModelClient, sink: TraceSink) -> list[LLMCallOutcome]:
    """Run the calls in parallel, write their trace nodes in one bulk write, return outcomes in order."""
    if not calls:
        return []
    results = _run_batch(calls, client)
    sink.nodes_recorded([node for _, node in results])
    return [outcome for outcome, _ in results]


#: How often a stoppable batch looks at its stop condition while it waits for answers.
STOP_POLL_SECONDS = 0.2


def execute_llm_calls_until_stopped(
    calls: list[LLMCall],
    client: ModelClient,
    sink: TraceSink,
    stop_reason: Callable[[], str | None],
    on_answered: Callable[[], None] | None = None,
) -> list[LLMCallOutcome]:
    """Like `execute_llm_calls`, for a caller that waits on its own calls (embedded mode).

    The batch's nodes are written when it is sent (its size is known at once; `queued` for a local
    model's calls, which wait for a slot, else `running`), each
    again the moment its call returns (progress and `rlm trace` move during a long batch), and
    when `stop_reason()` names a reason the calls not yet answered are cancelled: waiting ones
    leave the queue, running ones have their request closed, and their nodes say `cancelled`.
    """
    if not calls:
        return []
    sent = [_sent_node(call, client) for call in calls]
    sink.nodes_recorded(sent)
    answered: queue.SimpleQueue[int] = queue.SimpleQueue()
    futures = [_start_one(call, client) for call in calls]
    for index, future in enumerate(futures):
        future.add_done_callback(lambda _, index=index: answered.put(index))
    outcomes: dict[int, LLMCallOutcome] = {}
    reason = None
    while len(outcomes) < len(calls):
        reason = stop_reason()
        if reason:
            break
        try:
            index = answered.get(timeout=STOP_POLL_SECONDS)
        except queue.Empty:
            continue
        if futures[index].cancelled():
            continue
        outcome, node = futures[index].result()
        node.queued_at = sent[index].queued_at
        sink.node_finished(node)
        outcomes[index] = outcome
        if on_answered is not None:
            on_answered()
    if reason:
        ended = []
        for index, call in enumerate(calls):
            if index in outcomes:
                continue
            future = futures[index]
            if future.cancel() or future.cancelled():
                outcomes[index], node = _cancelled(call, sent[index], reason)
            else:  # it answered just now: keep the answer it paid for
                outcomes[index], node = future.result()
                node.queued_at = sent[index].queued_at
            ended.append(node)
        sink.nodes_recorded(ended)
    return [outcomes[index] for index in range(len(calls))]


def _start_one(call: LLMCall, client: ModelClient) -> Future[tuple[LLMCallOutcome, TraceNode]]:
    """The call under way: a task on the leaf-call loop (cancelling it closes its request), or a
    pool thread for a client that cannot be awaited (cancelling it only drops a call not started)."""
    if supports_async(client):
        return asyncio.run_coroutine_threadsafe(
            _await_one(call, cast(AsyncModelClient, client)), _loop_thread.get().loop
        )
    return _pool.submit(_run_one, call, client)


def _cancelled(call: LLMCall, node: TraceNode, reason: str) -> tuple[LLMCallOutcome, TraceNode]:
    message = f"sub-call cancelled: {reason}"
    node.status, node.error, node.finished_at = "cancelled", message, utcnow()
    return LLMCallOutcome(call.node_id, None, message, model=call.model, answered=False), node
