"""Limits shared by every worker through Redis: a request rate per model or provider, and a cap on
sub-calls running at once across the whole fleet.

- MODEL_RATE_LIMITS, e.g. `{"openai/gpt-4o": 500, "anthropic": 1000}`: requests per minute for a
  model string, or for every model of a provider (the part before the `/`). GCRA in one atomic
  script; a call over the limit waits for its slot instead of failing.
- SUBCALL_CONCURRENCY_LIMIT: sub-calls in flight at once over all llm workers (a provider's
  concurrency quota, or a local model server that serves N requests at a time). Slots carry an
  expiry, so a worker killed while holding some does not leak them.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from functools import lru_cache
from typing import cast

import redis

from rlm_worker import metrics
from rlm_worker.engine.ports import AsyncModelClient, ModelClient
from rlm_worker.engine.types import ModelReply

# Returns the seconds to wait (0 = go). Keys: the model's key. Args: period in ms per request, burst.
_GCRA = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now_ms)
if tat < now_ms then tat = now_ms end
local allow_at = tat - interval * burst
if now_ms < allow_at then return allow_at - now_ms end
redis.call('SET', KEYS[1], tat + interval, 'PX', interval * (burst + 1) + 1000)
return 0
"""

# Takes a slot if fewer than the limit are held. Keys: the slot set. Args: limit, slot id, ttl ms.
_TAKE_SLOT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
  return 1
end
return 0
"""

SLOTS_KEY = "rlm:subcall-slots"


def redis_url_from_settings() -> str:
    from rlm_shared.config import get_settings

    settings = get_settings()
    backend = settings.celery_result_backend
    return backend if backend.startswith("redis") else settings.celery_broker_url


class ModelRateLimiter:
    def __init__(self, redis_url: str, limits_per_minute: dict[str, float], burst: int = 5) -> None:
        self.limits = limits_per_minute
        self.burst = burst
        self._redis = redis.Redis.from_url(redis_url) if limits_per_minute else None
        self._script = self._redis.register_script(_GCRA) if self._redis else None

    def limits_for(self, model: str) -> list[tuple[str, float]]:
        """(limit key, requests per minute) of the model itself and of its provider."""
        provider = model.split("/", 1)[0] if "/" in model else None
        keys = [model, provider] if provider else [model]
        return [(key, self.limits[key]) for key in keys if self.limits.get(key)]

    def acquire(self, model: str) -> None:
        """Block until `model` may be called again."""
        if self._script is None:
            return
        for key, per_minute in self.limits_for(model):
            if (wait_ms := self._wait_ms(key, per_minute)) > 0:
                metrics.guard_tripped("model_rate_limits")
            while wait_ms > 0:
                time.sleep(wait_ms / 1000)
                wait_ms = self._wait_ms(key, per_minute)

    async def acquire_async(self, model: str) -> None:
        """`acquire` on an event loop: Redis is asked from a worker thread, the wait is an asyncio sleep."""
        if self._script is None:
            return
        for key, per_minute in self.limits_for(model):
            if (wait_ms := await asyncio.to_thread(self._wait_ms, key, per_minute)) > 0:
                metrics.guard_tripped("model_rate_limits")
            while wait_ms > 0:
                await asyncio.sleep(wait_ms / 1000)
                wait_ms = await asyncio.to_thread(self._wait_ms, key, per_minute)

    def _wait_ms(self, key: str, per_minute: float) -> int:
        """Take a slot of `key` now (0), or say how many ms until one is free."""
        interval_ms = max(1, int(60_000 / per_minute))
        return int(self._script(keys=[f"rlm:rate:{key}"], args=[interval_ms, self.burst]))


class ConcurrencyLimiter:
    """At most `limit` holders at once over every process sharing the Redis; a context manager."""

    def __init__(self, redis_url: str, limit: int, slot_seconds: float, key: str = SLOTS_KEY) -> None:
        self.limit, self.key = limit, key
        self.slot_ms = int(slot_seconds * 1000)
        self._redis = redis.Redis.from_url(redis_url)
        self._take = self._redis.register_script(_TAKE_SLOT)

    def acquire(self) -> str:
        """Wait for a free slot and return its id (the wait backs off to 50 ms between looks)."""
        slot = uuid.uuid4().hex
        delay = 0.002
        if self._try_take(slot):
            return slot
        metrics.guard_tripped("subcall_concurrency_limit")
        while not self._try_take(slot):
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return slot

    async def acquire_async(self) -> str:
        """`acquire` on an event loop: each look at Redis runs in a worker thread, waits are asyncio sleeps."""
        slot = uuid.uuid4().hex
        delay = 0.002
        if await asyncio.to_thread(self._try_take, slot):
            return slot
        metrics.guard_tripped("subcall_concurrency_limit")
        while not await asyncio.to_thread(self._try_take, slot):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        return slot

    def release(self, slot: str) -> None:
        self._redis.zrem(self.key, slot)

    def _try_take(self, slot: str) -> bool:
        return bool(self._take(keys=[self.key], args=[self.limit, slot, self.slot_ms]))


class RateLimitedClient:
    """A ModelClient that takes a rate-limit slot before every call of a limited model."""

    def __init__(self, inner: ModelClient, limiter: ModelRateLimiter) -> None:
        self.inner, self.limiter = inner, limiter

    def complete(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        self.limiter.acquire(model)
        return self.inner.complete(model, messages)

    async def acomplete(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        """Only called when `inner` can be awaited (see `supports_async`)."""
        await self.limiter.acquire_async(model)
        return await cast(AsyncModelClient, self.inner).acomplete(model, messages)


class ConcurrencyLimitedClient:
    """A ModelClient that holds one fleet-wide slot for the length of every call."""

    def __init__(self, inner: ModelClient, limiter: ConcurrencyLimiter) -> None:
        self.inner, self.limiter = inner, limiter

    def complete(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        slot = self.limiter.acquire()
        try:
            return self.inner.complete(model, messages)
        finally:
            self.limiter.release(slot)

    async def acomplete(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        """Only called when `inner` can be awaited (see `supports_async`)."""
        slot = await self.limiter.acquire_async()
        try:
            return await cast(AsyncModelClient, self.inner).acomplete(model, messages)
        finally:
            await asyncio.to_thread(self.limiter.release, slot)


@lru_cache(maxsize=1)
def limiter_from_settings() -> ModelRateLimiter:
    from rlm_shared.config import get_settings

    settings = get_settings()
    limits = json.loads(settings.model_rate_limits) if settings.model_rate_limits else {}
    return ModelRateLimiter(redis_url_from_settings(), limits)
