"""Pushed notices that an execution stopped, so a leaf task need not read its status per message.

A leaf task must not call the model for an execution that was cancelled or has finished. Reading
the status costs a Postgres round trip on every message (~0.8 ms of a ~10 ms sub-call). Instead,
whatever stops an execution (the API's cancel, the root task storing the outcome, the reaper)
announces it on a Redis pub/sub channel of the broker, and every leaf process listens.

A listener is trusted only for a message it cannot have missed a stop for: `covers(sent_at)` holds
when it has known every stop announced since well before the message was sent (subscribed without
a break, nothing forgotten since). Anything else falls back to the database read: a listener that
just (re)connected, a non-Redis broker. A notice lost on the way (the announcer cannot reach Redis
while the listeners can) lets calls already queued for that execution run, as they would have had
they started just before the stop.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rlm_shared.config import get_settings
from rlm_worker.engine.process_local import ProcessLocal

log = logging.getLogger("rlm.stop_notices")

CHANNEL = "rlm:executions-stopped"
REDIS_SCHEMES = ("redis://", "rediss://")
#: Stopped executions a listener remembers; forgetting one moves `known_since` past it.
REMEMBERED = 10_000
#: How long before a message's send time the listener must already have been complete. The root
#: sends with a view of the status up to ~1.5 s old (its status probe reads every 0.5 s,
#: `runner.status_probe`, and the dispatcher may send once more after one 1 s wait on results);
#: a stop it had not seen yet must be one the listener heard. Plus clock skew between the root's
#: and the leaf's host (tens of ms with NTP). Only the first 2 s after a (re)subscribe pay for it.
MARGIN_SECONDS = 2.0
#: Idle this long, the listener pings; no reply for SILENT_SECONDS counts as a lost connection.
PING_SECONDS = 1.0
SILENT_SECONDS = 3.0
RECONNECT_SECONDS = 0.5


@lru_cache(maxsize=8)
def _publisher(url: str) -> redis.Redis:
    # One retry: a pooled connection that died with a Redis restart is replaced, not given up on.
    return redis.Redis.from_url(
        url, socket_connect_timeout=1.0, socket_timeout=1.0, retry=Retry(NoBackoff(), 1)
    )


def announce_stopped(target: str | redis.Redis, execution_id: str) -> None:
    """Tell every listener that `execution_id` stopped. Best effort: never raises."""
    if isinstance(target, str) and not target.startswith(REDIS_SCHEMES):
        return  # no listener can be covering anything either
    try:
        client = target if isinstance(target, redis.Redis) else _publisher(target)
        client.publish(CHANNEL, execution_id)
    except (redis.RedisError, OSError) as exc:
        log.warning("could not announce that execution %s stopped: %s", execution_id, exc)


class StopListener:
    """Subscribes to CHANNEL on a daemon thread; remembers the last REMEMBERED stopped executions."""

    def __init__(self, url: str, remember: int = REMEMBERED) -> None:
        self.url, self.remember = url, remember
        self._stopped: dict[str, float] = {}  # execution id -> when heard (wall clock), oldest first
        self._known_since: float | None = None  # every stop announced since then is in _stopped
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StopListener:
        if self.url.startswith(REDIS_SCHEMES) and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="rlm-stop-notices", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=PING_SECONDS + 1)

    def covers(self, sent_at: float | None) -> bool:
        """Whether every stop announced before a message sent at `sent_at` (wall clock) is known."""
        since = self._known_since
        return since is not None and sent_at is not None and since <= sent_at - MARGIN_SECONDS

    def is_stopped(self, execution_id: str) -> bool:
        return execution_id in self._stopped

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                self._listen()
            except Exception as exc:  # Redis down or restarting: not covering until subscribed again
                was_covering = self._known_since is not None
                self._known_since = None
                log.log(logging.WARNING if was_covering else logging.DEBUG, "stop notices lost: %r", exc)
            self._closed.wait(RECONNECT_SECONDS)
        self._known_since = None

    def _listen(self) -> None:
        # No retries inside redis-py: a silent reconnect would hide the gap in what we heard.
        client = redis.Redis.from_url(
            self.url,
            socket_connect_timeout=1.0,
            socket_timeout=SILENT_SECONDS,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        with client, client.pubsub() as pubsub:
            pubsub.subscribe(CHANNEL)
            heard = time.monotonic()
            while not self._closed.is_set():
                message = pubsub.get_message(timeout=PING_SECONDS)
                now = time.monotonic()
                if message is None:
                    if now - heard > SILENT_SECONDS:
                        raise redis.ConnectionError("no reply from Redis")
                    pubsub.ping()
                    continue
                heard = now
                if message["type"] == "subscribe":
                    self._known_since = time.time()  # the server subscribed us before it said so
                elif message["type"] == "message":
                    self._remember(message["data"])
        self._known_since = None

    def _remember(self, execution_id: str) -> None:
        self._stopped.pop(execution_id, None)
        self._stopped[execution_id] = time.time()
        while len(self._stopped) > self.remember:
            forgotten_at = self._stopped.pop(next(iter(self._stopped)))
            if self._known_since is not None:
                self._known_since = max(self._known_since, forgotten_at)


_listener = ProcessLocal(lambda: StopListener(get_settings().celery_broker_url).start())


def process_listener() -> StopListener:
    """This process's listener on the Celery broker, started on first use (never covers anything
    when the broker is not Redis)."""
    return _listener.get()
