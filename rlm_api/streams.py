"""Slots for requests that hold a web thread for long: event streams and long waits.

The shipped gunicorn runs a few threads per process (gunicorn.conf.py); an SSE stream, a
`/v1/chat/completions` answer, an MCP tool call or a `wait=` submission holds one for as long as
the execution runs. Forty streams from one tenant took every thread, and `/api/health` and every
other tenant timed out (issue 30). So each process lends at most `API_MAX_OPEN_STREAMS` threads
to such requests (the rest always serve short requests), and one token (with no tokens set, the
API is one user's and only the first limit applies) at most `API_MAX_STREAMS_PER_TOKEN` of them
across every web process (counted in the broker's Redis in distributed mode, leases renewed while
held; per process otherwise); past either, the request gets a 429 at once (a `wait=` submission
just answers without waiting).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
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


class SharedCounts:
    """Each token's streams across every web process, in Redis: a sorted set per token with one
    member per open stream, scored by when its lease ends. Each process renews its members'
    leases every third of a lease, so the slots of a process that died free themselves within
    `LEASE_SECONDS`. A Redis outage fails open to the per-process count."""

    LEASE_SECONDS = 60.0
    #: Atomic: drop lapsed members, refuse at the limit, else add one (KEYS[1]; now, limit, expiry, member).
    TAKE = """
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
    if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
    redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[5])))
    return 1
    """

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
        self._take = self.client.register_script(self.TAKE)
        self._mine: dict[str, str] = {}  # member -> key, this process's open streams
        self._lock = threading.Lock()
        self._renewer: threading.Thread | None = None  # started with the first stream (after any fork)

    @staticmethod
    def key(owner: str) -> str:
        return f"rlm-streams:{owner}"

    def take(self, owner: str, limit: int) -> str | bool:
        """A member name when a slot was taken, False when the token is at its limit, True when
        Redis could not be asked (the caller counts in-process instead)."""
        member = f"{os.getpid()}:{uuid.uuid4().hex}"
        now = time.time()
        try:
            taken = self._take(
                keys=[self.key(owner)], args=[now, limit, now + self.LEASE_SECONDS, member, self.LEASE_SECONDS * 2]
            )
        except Exception as exc:  # Redis down: serve rather than refuse everyone
            log.warning("stream counts unavailable, counting per process: %s", type(exc).__name__)
            return True
        if not taken:
            return False
        with self._lock:
            self._mine[member] = self.key(owner)
            if self._renewer is None:
                self._renewer = threading.Thread(target=self._renew_forever, name="rlm-stream-leases", daemon=True)
                self._renewer.start()
        return member

    def give_back(self, member: str) -> None:
        with self._lock:
            key = self._mine.pop(member, None)
        if key is not None:
            try:
                self.client.zrem(key, member)
            except Exception:  # its lease lapses by itself
                pass

    def _renew_forever(self) -> None:
        while True:
            time.sleep(self.LEASE_SECONDS / 3)
            with self._lock:
                held = list(self._mine.items())
            try:
                expiry = time.time() + self.LEASE_SECONDS
                pipe = self.client.pipeline(transaction=False)
                for member, key in held:
                    pipe.zadd(key, {member: expiry}, xx=True)
                    pipe.expire(key, math.ceil(self.LEASE_SECONDS * 2))
                pipe.execute()
            except Exception as exc:
                log.warning("stream leases not renewed: %s", type(exc).__name__)


class StreamSlots:
    """How many long requests this process holds, in all; and per token, across every process
    when `shared` counts them in Redis (else in this process)."""

    def __init__(self, total: int, per_caller: int, shared: SharedCounts | None = None) -> None:
        self.total, self.per_caller, self.shared = total, per_caller, shared
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    def take(self, caller: str) -> tuple[str | None, str | None]:
        """(None, member) when a slot was taken for `caller` (`member`: its shared count entry,
        if any), else (why not, None) for the 429's message."""
        with self._lock:
            if sum(self._held.values()) >= self.total:
                log.warning("stream refused: this process holds %d of %d", sum(self._held.values()), self.total)
                return f"this server holds its limit of {self.total} open streams and long waits per process", None
            local_full = caller != OPEN and self._held[caller] >= self.per_caller
            if local_full and self.shared is None:
                log.warning("stream refused: one token holds %d of %d", self._held[caller], self.per_caller)
                return self._per_token_refusal(), None
            self._held[caller] += 1  # reserved while Redis is asked
        member = None
        if caller != OPEN and self.shared is not None:
            taken = self.shared.take(caller, self.per_caller)
            if taken is False or (taken is True and local_full):
                self._unhold(caller)
                log.warning("stream refused: one token holds its %d", self.per_caller)
                return self._per_token_refusal(), None
            member = taken if isinstance(taken, str) else None
        return None, member

    def _per_token_refusal(self) -> str:
        return f"this token already holds {self.per_caller} open streams or long waits (the limit)"

    def give_back(self, caller: str, member: str | None) -> None:
        self._unhold(caller)
        if member is not None and self.shared is not None:
            self.shared.give_back(member)

    def _unhold(self, caller: str) -> None:
        with self._lock:
            self._held[caller] -= 1
            if self._held[caller] <= 0:
                del self._held[caller]


def init_streams(app: Flask, settings: Settings) -> None:
    broker = settings.celery_broker_url
    dispatch = app.config.get("RLM_DISPATCH", settings.dispatch)
    shared = None
    if dispatch == "celery" and broker.startswith(("redis://", "rediss://")):
        shared = SharedCounts(broker)  # every web process shares the broker's Redis
    app.extensions["rlm_streams"] = StreamSlots(
        settings.api_max_open_streams, settings.api_max_streams_per_token, shared
    )


def _slots() -> StreamSlots:
    return current_app.extensions["rlm_streams"]


def _caller() -> str:
    return current_owner() or OPEN


def try_slot() -> Slot | None:
    """A slot for the calling token, or None when a limit is full."""
    caller, slots = _caller(), _slots()
    refused, member = slots.take(caller)
    if refused is not None:
        metrics.guard_tripped("api_max_open_streams")
        return None
    return Slot(slots, caller, member)


def take_slot() -> Slot:
    """A slot for the calling token, or a 429 `too_many_streams` saying which limit is full."""
    caller, slots = _caller(), _slots()
    refused, member = slots.take(caller)
    if refused is not None:
        metrics.guard_tripped("api_max_open_streams")
        raise APIError(
            429, "too_many_streams", f"{refused}; close one or retry later", headers={"Retry-After": str(RETRY_SECONDS)}
        )
    return Slot(slots, caller, member)


class Slot:
    """One taken slot; `release` gives it back (once, however often it is called)."""

    def __init__(self, slots: StreamSlots, caller: str, member: str | None) -> None:
        self.slots, self.caller, self.member = slots, caller, member
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.slots.give_back(self.caller, self.member)

    def held_while(self, stream: Iterator[T]) -> Iterator[T]:
        """`stream`, giving the slot back when it ends or the client goes away (WSGI closes it)."""
        try:
            yield from stream
        finally:
            self.release()
