"""Slots for requests that hold a web thread for long: event streams and long waits.

The shipped gunicorn runs a few threads per process (gunicorn.conf.py); an SSE stream, a
`/v1/chat/completions` answer, an MCP tool call or a `wait=` submission holds one for as long as
the execution runs. Forty streams from one tenant took every thread, and `/api/health` and every
other tenant timed out (issue 30). So each process lends at most `API_MAX_OPEN_STREAMS` threads
to such requests (the rest always serve short requests), and one token (with no tokens set, the
API is one user's and only the first limit applies) at most
`API_MAX_STREAMS_PER_TOKEN` of them; past either, the request gets a 429 at once
(a `wait=` submission just answers without waiting). Counts are per web process: a process's
threads are what a stream takes.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from typing import TypeVar

from flask import Flask, current_app

from rlm_api.auth import current_owner
from rlm_api.errors import APIError
from rlm_shared.config import Settings
from rlm_worker import metrics

log = logging.getLogger("rlm.api.streams")
T = TypeVar("T")
RETRY_SECONDS = 5
#: The caller when no tokens are configured: one user, held only to the process's limit.
OPEN = "(open)"


class StreamSlots:
    """How many long requests this process holds, in all and per caller."""

    def __init__(self, total: int, per_caller: int) -> None:
        self.total, self.per_caller = total, per_caller
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    def take(self, caller: str) -> str | None:
        """None when a slot was taken for `caller`, else why not (for the 429's message)."""
        with self._lock:
            if sum(self._held.values()) >= self.total:
                log.warning("stream refused: this process holds %d of %d", sum(self._held.values()), self.total)
                return f"this server holds its limit of {self.total} open streams and long waits per process"
            if caller != OPEN and self._held[caller] >= self.per_caller:
                log.warning("stream refused: one caller holds %d of %d", self._held[caller], self.per_caller)
                return f"this token already holds {self.per_caller} open streams or long waits (the limit)"
            self._held[caller] += 1
            return None

    def give_back(self, caller: str) -> None:
        with self._lock:
            self._held[caller] -= 1
            if self._held[caller] <= 0:
                del self._held[caller]


def init_streams(app: Flask, settings: Settings) -> None:
    app.extensions["rlm_streams"] = StreamSlots(settings.api_max_open_streams, settings.api_max_streams_per_token)


def _slots() -> StreamSlots:
    return current_app.extensions["rlm_streams"]


def _caller() -> str:
    return current_owner() or OPEN


def try_slot() -> Slot | None:
    """A slot for the calling token, or None when a limit is full."""
    caller, slots = _caller(), _slots()
    if slots.take(caller) is not None:
        metrics.guard_tripped("api_max_open_streams")
        return None
    return Slot(slots, caller)


def take_slot() -> Slot:
    """A slot for the calling token, or a 429 `too_many_streams` saying which limit is full."""
    caller, slots = _caller(), _slots()
    refused = slots.take(caller)
    if refused is not None:
        metrics.guard_tripped("api_max_open_streams")
        raise APIError(
            429, "too_many_streams", f"{refused}; close one or retry later", headers={"Retry-After": str(RETRY_SECONDS)}
        )
    return Slot(slots, caller)


class Slot:
    """One taken slot; `release` gives it back (once, however often it is called)."""

    def __init__(self, slots: StreamSlots, caller: str) -> None:
        self.slots, self.caller = slots, caller
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.slots.give_back(self.caller)

    def held_while(self, stream: Iterator[T]) -> Iterator[T]:
        """`stream`, giving the slot back when it ends or the client goes away (WSGI closes it)."""
        try:
            yield from stream
        finally:
            self.release()
