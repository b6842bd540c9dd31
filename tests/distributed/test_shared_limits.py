"""Limits shared through Redis: two limiter instances stand for two worker processes."""

from __future__ import annotations

import threading
import time
import uuid

import redis

from rlm_worker.rate_limit import ConcurrencyLimiter, ModelRateLimiter
from tests.support.services import REDIS_HOST, REDIS_PORT

REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/6"


def take_all(limiters, model: str, calls: int) -> float:
    """`calls` acquisitions spread over the limiters in parallel threads; the seconds they took."""
    started = time.monotonic()
    threads = [
        threading.Thread(target=lambda lim=lim: [lim.acquire(model) for _ in range(calls // len(limiters))])
        for lim in limiters
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return time.monotonic() - started


def test_a_model_rate_limit_holds_across_workers():
    model = f"openai/rate-{uuid.uuid4().hex[:8]}"
    limits = {model: 600}  # one call per 100 ms after a burst of 6
    workers = [ModelRateLimiter(REDIS_URL, limits), ModelRateLimiter(REDIS_URL, limits)]
    seconds = take_all(workers, model, 16)
    assert 0.9 <= seconds < 5, seconds  # (16 - 6) calls at 100 ms; unshared, each would take 0.2 s


def test_a_provider_rate_limit_covers_all_its_models():
    provider = f"prov{uuid.uuid4().hex[:8]}"
    limiter = ModelRateLimiter(REDIS_URL, {provider: 600})
    assert limiter.limits_for(f"{provider}/a") == [(provider, 600)]
    assert limiter.limits_for("other/a") == []
    started = time.monotonic()
    for i in range(16):
        limiter.acquire(f"{provider}/model-{i % 3}")
    assert time.monotonic() - started >= 0.9


def test_the_concurrency_cap_is_shared_and_a_dead_holders_slots_come_back():
    key = f"rlm:test-slots:{uuid.uuid4().hex[:8]}"
    first = ConcurrencyLimiter(REDIS_URL, limit=2, slot_seconds=0.5, key=key)
    second = ConcurrencyLimiter(REDIS_URL, limit=2, slot_seconds=0.5, key=key)
    held = [first.acquire(), second.acquire()]  # the cap is reached, across two "workers"
    assert redis.Redis.from_url(REDIS_URL).zcard(key) == 2
    started = time.monotonic()
    third = second.acquire()  # never released: the first two expire as a dead worker's would
    waited = time.monotonic() - started
    assert 0.3 <= waited < 3, waited
    second.release(third)
    first.release(held[0])
    assert redis.Redis.from_url(REDIS_URL).zcard(key) <= 1
