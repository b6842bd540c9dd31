"""Dispatcher adapters: Celery tasks on `rlm.llm` (distributed) or the in-process pool (embedded)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult, ResultSet
from kombu.exceptions import OperationalError as BrokerUnreachable
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rlm_shared.prompt_slices import SliceFinder
from rlm_shared.queues import LLM_CALLS_TASK, LLM_QUEUE
from rlm_shared.tracing import under_node
from rlm_worker import metrics
from rlm_worker.engine.ports import ModelClient, TraceSink
from rlm_worker.engine.subcall import execute_llm_calls_until_stopped
from rlm_worker.engine.types import LLMCall, LLMCallOutcome

#: A big fan-out's calls ride in about this many messages (each one's calls run concurrently on its
#: worker's event loop) of at most MAX_BATCH_SIZE calls, but never fewer than the configured size.
FANOUT_MESSAGES = 8
MAX_BATCH_SIZE = 32
#: How long one wait on the result backend lasts before stop checks and redispatch run again.
WAIT_SLICE_SECONDS = 1.0
#: Message headers the leaf task reads (`tasks.llm_calls`): when the message was sent (wall clock),
#: and whether an earlier send may have answered some of its calls, so it must read the trace.
SENT_AT_HEADER = "rlm_sent_at"
CHECK_TRACE_HEADER = "rlm_check_trace"
#: The broker or result backend restarting: wait and go on (lost messages are redispatched).
_BROKER_DOWN = (BrokerUnreachable, RedisConnectionError, RedisTimeoutError, ConnectionError)


#: Words of a database error's text: the statement and its parameters (other rows, the schema).
_DATABASE_TEXT = ("[SQL:", "[parameters:", "psycopg", "sqlalchemy")


def _public(failure: object) -> str:
    """A failed task's text as the model's code may read it: never a database error's own words."""
    text = str(failure)
    if any(word in text for word in _DATABASE_TEXT):
        return "a database write failed (the details are in the worker's log)"
    return text


def _failed(calls: list[LLMCall], reason: str) -> list[LLMCallOutcome]:
    return [LLMCallOutcome(node_id=c.node_id, text=None, error=reason, model=c.model) for c in calls]


@dataclass
class _Sent:
    index: int
    result: AsyncResult
    sent_at: float


class CeleryDispatcher:
    """Sends sub-calls to `rlm.llm` and gathers them in order, blocking on the result backend.

    - Several calls ride in one task message (`batch_size`): fewer messages, one bulk trace write.
    - At most `max_inflight` calls of this execution are queued or running at once, so one huge
      fan-out cannot starve other executions of the llm pool.
    - A batch unanswered after `redispatch_after` seconds (its worker died holding it) is sent
      again; calls are idempotent by node id, and the first answer wins.
    - `should_stop` (cancellation, a lost lease) and the timeout revoke what is still pending.
    - A batch sent again, and every batch of a `resumed` attempt (an earlier attempt's leaf tasks
      may have answered its calls), tells the leaf task to look in the trace first.
    """

    def __init__(
        self,
        celery: Celery,
        batch_size: int = 8,
        max_inflight: int = 256,
        redispatch_after: float = 120.0,
        should_stop: Callable[[], bool] | None = None,
        resumed: bool = False,
    ) -> None:
        self.celery = celery
        self.batch_size = max(1, batch_size)
        self.max_inflight = max(1, max_inflight)
        self.redispatch_after = redispatch_after
        self.should_stop = should_stop or (lambda: False)
        self.resumed = resumed
        self._answered: list[AsyncResult] = []  # results read but not yet deleted from the backend
        self._answered_lock = threading.Lock()
        self._slices: SliceFinder | None = None

    def ship_slices_of(self, context_id: str, context: str) -> None:
        """Send prompts that quote this stored context as references to it (prompt_slices.py)."""
        self._slices = SliceFinder(context_id, context)

    def run_llm_calls(self, calls: list[LLMCall], timeout: float | None = None) -> list[LLMCallOutcome]:
        if not calls:
            return []
        size = self._batch_size_for(len(calls))
        batches = [calls[i : i + size] for i in range(0, len(calls), size)]
        deadline = time.monotonic() + timeout if timeout is not None else None
        unsent = deque(range(len(batches)))
        pending: dict[str, _Sent] = {}
        done: dict[int, Any] = {}
        resent: dict[int, int] = {}  # batches that may be out already -> resends after an outage
        while len(done) < len(batches):
            inflight = sum(len(batches[s.index]) for s in pending.values())
            while unsent and (not pending or inflight + len(batches[unsent[0]]) <= self.max_inflight):
                index = unsent[0]
                try:
                    sent = self._send(index, batches[index], again=index in resent)
                except _BROKER_DOWN:  # sent again after the next wait, as a batch that may be out
                    resent.setdefault(index, 0)
                    break
                unsent.popleft()
                pending[sent.result.id] = sent
                inflight += len(batches[index])
            self._forget_answered()  # while the calls just sent are out, not between answer and caller
            reason = self._stop_reason(deadline)
            if reason:
                # Best effort: with the broker down, a stopped execution's calls are refused by the leaf task.
                for sent in pending.values():
                    with suppress(*_BROKER_DOWN):
                        sent.result.revoke()
                break
            for index in self._collect(pending, done, deadline, more_to_send=bool(unsent)):
                resent[index] = resent.get(index, 0) + 1
                if resent[index] > MAX_RESENDS_AFTER_OUTAGE:
                    done[index] = "its worker lost the broker or the database too many times"
                else:
                    unsent.append(index)
            self._redispatch_stale(pending, batches)
        outcomes: list[LLMCallOutcome] = []
        for index, batch in enumerate(batches):
            value = done.get(index)
            if isinstance(value, list):
                outcomes.extend(LLMCallOutcome.from_dict(item) for item in value)
            elif index in done:
                outcomes.extend(_failed(batch, f"sub-call task failed: {_public(value)}"))
            else:
                outcomes.extend(_failed(batch, f"sub-call not run: {reason}"))
        return outcomes

    def _batch_size_for(self, count: int) -> int:
        """Small fan-outs get one call per message (lowest latency); big ones share messages.

        A message costs ~4 ms of CPU over the processes it crosses whatever it carries (publish,
        delivery, acknowledgement, result store and read, one trace write), so past `batch_size` a
        fan-out rides in about `FANOUT_MESSAGES` messages of up to `MAX_BATCH_SIZE` calls: at
        4 x 32 a 256-call fan-out took 2.34 ms of CPU a sub-call in messages of 8 and 1.95 ms in
        messages of 32 (BENCHMARKS.md). The calls of one message run at once on its worker's
        event loop, so fewer, larger messages do not queue the calls behind a worker's threads.
        """
        if count <= 16:
            return 1
        wave = min(count, self.max_inflight)  # what is out at once
        return max(self.batch_size, min(MAX_BATCH_SIZE, -(-wave // FANOUT_MESSAGES), self.max_inflight))

    def _send(self, index: int, batch: list[LLMCall], again: bool = False) -> _Sent:
        # argsrepr: what Flower and the logs show of the task. Celery would build it from the
        # prompts (user data, and ~0.2 ms of CPU a message); the execution and call ids say enough.
        slices = self._slices
        calls = [c.to_dict() if slices is None else slices.wire(c.to_dict()) for c in batch]
        with under_node(batch[0].execution_id, batch[0].parent_id):  # the message's trace parent
            result = self.celery.send_task(
                LLM_CALLS_TASK,
                args=(calls,),
                queue=LLM_QUEUE,
                argsrepr=f"execution {batch[0].execution_id}: {len(batch)} call(s) from {batch[0].node_id}",
                kwargsrepr="{}",
                headers={SENT_AT_HEADER: time.time(), CHECK_TRACE_HEADER: again or self.resumed},
            )
        return _Sent(index, result, time.monotonic())

    def _stop_reason(self, deadline: float | None) -> str | None:
        if self.should_stop():
            return "the execution was stopped"
        if deadline is not None and time.monotonic() >= deadline:
            return "the execution's time limit was reached"
        return None

    def _collect(
        self, pending: dict[str, _Sent], done: dict[int, Any], deadline: float | None, more_to_send: bool
    ) -> list[int]:
        """Wait up to one slice; take every result that arrives (pub/sub, not polling).

        Returns the batches whose task failed only because its worker lost the broker or the
        database (e.g. storing its result during a Redis restart): they are sent again, and their
        calls already answered come back from the trace without a second model call.
        """
        again: list[int] = []
        wait = WAIT_SLICE_SECONDS
        if deadline is not None:
            wait = max(0.01, min(wait, deadline - time.monotonic()))
        results = ResultSet([s.result for s in pending.values()], app=self.celery)
        try:
            # interval=0: Celery first polls the backend once and, when anything is still pending,
            # sleeps `interval` (default 0.5 s) before listening on pub/sub; every sub-call paid it.
            for task_id, meta in self.celery.backend.iter_native(
                results, timeout=wait, interval=0, no_ack=False
            ):
                sent = pending.pop(task_id, None)
                if sent is None or sent.index in done:
                    continue
                status = meta.get("status")
                if status != "SUCCESS" and _lost_a_service(meta.get("result")):
                    again.append(sent.index)
                    continue
                done[sent.index] = (
                    meta.get("result") if status == "SUCCESS" else f"{status}: {meta.get('result')!r}"
                )
                for other_id in [k for k, s in pending.items() if s.index == sent.index]:
                    pending.pop(other_id)  # a redispatched twin; the first answer won
                if more_to_send:
                    return again
        except (CeleryTimeout, TimeoutError):
            return again
        except _BROKER_DOWN:
            time.sleep(min(wait, 0.5))  # reconnects on the next wait
            return again
        finally:
            with self._answered_lock:
                self._answered.extend(s for s in results.results if s.id not in pending)
        return again

    def _forget_answered(self) -> None:
        """Delete the results already read (the rest expire after `result_expires`)."""
        with self._answered_lock:
            answered, self._answered = self._answered, []
        for result in answered:
            with suppress(*_BROKER_DOWN):  # results expire anyway
                result.forget()

    def _redispatch_stale(self, pending: dict[str, _Sent], batches: list[list[LLMCall]]) -> None:
        now = time.monotonic()
        for task_id, sent in list(pending.items()):
            if now - sent.sent_at >= self.redispatch_after:
                try:
                    again = self._send(sent.index, batches[sent.index], again=True)
                except _BROKER_DOWN:
                    return
                pending.pop(task_id)
                pending[again.result.id] = again
                metrics.guard_tripped("subcall_redispatch_seconds")


#: How often one batch is sent again after its worker lost the broker or the database.
MAX_RESENDS_AFTER_OUTAGE = 3
_OUTAGE_ERRORS = {
    "ConnectionError",
    "OperationalError",
    "InterfaceError",
    "TimeoutError",
    "ConnectionRefusedError",
}


def _lost_a_service(error: Any) -> bool:
    """A task failure caused by an unreachable broker, result backend or database, not by the call."""
    name = error.get("exc_type") if isinstance(error, dict) else type(error).__name__
    return name in _OUTAGE_ERRORS


class InProcessDispatcher:
    """Embedded mode: sub-calls run in this process (the leaf-call loop), traced the same way.

    It waits on its own calls, so it keeps the guards itself: when `should_stop()` turns true
    (cancellation) or `timeout` passes, the calls not yet answered are cancelled and recorded so.
    `on_answered` is told of each call the moment it returns (a progress display).
    """

    def __init__(
        self,
        client: ModelClient,
        sink: TraceSink,
        should_stop: Callable[[], bool] | None = None,
        on_answered: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.sink = sink
        self.should_stop = should_stop or (lambda: False)
        self.on_answered = on_answered

    def run_llm_calls(self, calls: list[LLMCall], timeout: float | None = None) -> list[LLMCallOutcome]:
        deadline = time.monotonic() + timeout if timeout is not None else None

        def stop_reason() -> str | None:
            if self.should_stop():
                return "the execution was stopped"
            if deadline is not None and time.monotonic() >= deadline:
                return "the execution's time limit was reached"
            return None

        return execute_llm_calls_until_stopped(calls, self.client, self.sink, stop_reason, self.on_answered)
