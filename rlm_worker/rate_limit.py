"""A per-model request rate limit shared by every worker, kept in Redis (GCRA, one atomic script).

Configured by MODEL_RATE_LIMITS, e.g. `{"openai/gpt-4o": 500}` requests per minute; models not
listed are not limited. A call over the limit waits for its slot instead of failing.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache

import redis

from rlm_worker.engine.ports import ModelClient
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


class ModelRateLimiter:
    def __init__(self, redis_url: str, limits_per_minute: dict[str, float], burst: int = 5) -> None:
        self.limits = limits_per_minute
        self.burst = burst
        self._redis = redis.Redis.from_url(redis_url) if limits_per_minute else None
        self._script = self._redis.register_script(_GCRA) if self._redis else None

    def acquire(self, model: str) -> None:
        """Block until `model` may be called again."""
        per_minute = self.limits.get(model)
        if not per_minute or self._script is None:
            return
        interval_ms = max(1, int(60_000 / per_minute))
        while True:
            wait_ms = int(self._script(keys=[f"rlm:rate:{model}"], args=[interval_ms, self.burst]))
            if wait_ms <= 0:
                return
            time.sleep(wait_ms / 1000)


class RateLimitedClient:
    """A ModelClient that takes a rate-limit slot before every call of a limited model."""

    def __init__(self, inner: ModelClient, limiter: ModelRateLimiter) -> None:
        self.inner, self.limiter = inner, limiter

    def complete(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        self.limiter.acquire(model)
        return self.inner.complete(model, messages)


@lru_cache(maxsize=1)
def limiter_from_settings() -> ModelRateLimiter:
    from rlm_worker.config import get_settings

    settings = get_settings()
    limits = json.loads(settings.model_rate_limits) if settings.model_rate_limits else {}
    backend = settings.celery_result_backend
    redis_url = backend if backend.startswith("redis") else settings.celery_broker_url
    return ModelRateLimiter(redis_url, limits)
