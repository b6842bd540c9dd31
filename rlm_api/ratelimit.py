"""Per-token request limits, shared by every gunicorn process through Redis (`limits` library).

Distributed mode counts in the broker's Redis, so four web processes enforce one limit together;
embedded mode (one process, maybe no Redis) counts in memory. A Redis outage fails open: losing the
limiter must not take the API down with it.
"""

from __future__ import annotations

import logging
import math
import time

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from rlm_shared.config import Settings

log = logging.getLogger("rlm.api.ratelimit")
NAMESPACE = "rlm-api"


def storage_uri(settings: Settings, dispatch: str) -> str:
    broker = settings.celery_broker_url
    if dispatch == "celery" and broker.startswith(("redis://", "rediss://")):
        return broker
    return "memory://"


class TokenRateLimiter:
    """`hit(owner)` counts one request and says how long to wait when over the limit."""

    def __init__(self, rate: str, uri: str) -> None:
        self.item = parse(rate)
        options = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0} if uri.startswith("redis") else {}
        self.limiter = SlidingWindowCounterRateLimiter(storage_from_string(uri, **options))

    @property
    def rate(self) -> str:
        return str(self.item)

    def hit(self, owner: str) -> int | None:
        """None if the request may proceed, else the seconds until it may (for `Retry-After`)."""
        try:
            if self.limiter.hit(self.item, NAMESPACE, owner):
                return None
            stats = self.limiter.get_window_stats(self.item, NAMESPACE, owner)
        except Exception as exc:  # Redis down: serve rather than refuse everyone
            log.warning("rate limiter unavailable, not limiting: %s", type(exc).__name__)
            return None
        return max(1, math.ceil(stats.reset_time - time.time()))
