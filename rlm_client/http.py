"""Connection settings, bearer token and retries, shared by the sync and the async client.

Retries use tenacity rather than httpx's transport retries: those only repeat a failed
connection, while the API's back-pressure comes as responses — 429 (`rate_limited`,
`quota_exceeded`) and 503 (`broker_unavailable`, or a proxy's) — with a `Retry-After` to honour.
Each retry waits `Retry-After` when the server sent one (capped at `max_wait`), else an
exponential backoff with jitter. A connection that could not be opened is retried too: no request
reached the server, so nothing can run twice. After the last attempt the error response becomes
its typed exception (`errors.py`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)

from rlm_client.errors import error_from_response, retry_after_seconds

DEFAULT_URL = "http://127.0.0.1:8000"
RETRY_STATUSES = frozenset({429, 503})
#: Only failures where the request surely never reached the server.
RETRY_EXCEPTIONS = (httpx.ConnectError, httpx.ConnectTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` in all (1 = no retry); waits from `initial` doubling up to `max_wait` seconds."""

    attempts: int = 5
    initial: float = 0.5
    max_wait: float = 30.0

    def wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            seconds = retry_after_seconds(outcome.result())
            if seconds is not None:
                return min(seconds, self.max_wait)
        return wait_exponential_jitter(initial=self.initial, max=self.max_wait)(state)

    def tenacity_kwargs(self) -> dict[str, Any]:
        return {
            "stop": stop_after_attempt(max(1, self.attempts)),
            "wait": self.wait,
            "retry": retry_if_result(lambda r: r.status_code in RETRY_STATUSES)
            | retry_if_exception_type(RETRY_EXCEPTIONS),
            "retry_error_callback": _last_outcome,
        }


def _last_outcome(state: RetryCallState) -> httpx.Response:
    """Out of attempts: hand back the last response (it becomes a typed error) or raise its exception."""
    assert state.outcome is not None
    return state.outcome.result()


def client_options(
    base_url: str | None, token: str | None, timeout: float | httpx.Timeout, transport: Any
) -> dict[str, Any]:
    """Arguments for `httpx.Client`/`httpx.AsyncClient`. The URL and token default to the
    environment's `RLM_API_URL` and `RLM_API_TOKEN`; the token is sent, never logged."""
    token = token if token is not None else os.environ.get("RLM_API_TOKEN")
    headers = {"Accept": "application/json", "User-Agent": "rlm-client"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    options: dict[str, Any] = {
        "base_url": (base_url or os.environ.get("RLM_API_URL") or DEFAULT_URL).rstrip("/"),
        "headers": headers,
        "timeout": timeout,
    }
    if transport is not None:
        options["transport"] = transport
    return options


def checked(response: httpx.Response) -> httpx.Response:
    """The response if it succeeded; else its typed `APIError`."""
    if response.is_success:
        return response
    raise error_from_response(response)
