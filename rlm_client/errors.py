"""What can go wrong, as exceptions a caller can catch by kind.

Every error response of the API is `{"error": {"code", "message", "details"?}}`; `APIError` keeps
all of it (and the HTTP status), and its subclasses let a caller catch the cases it can act on.
"""

from __future__ import annotations

from typing import Any

import httpx


class RLMClientError(Exception):
    """Anything this client raises."""


class APIError(RLMClientError):
    """The API answered with an error: `status`, its stable `code`, `message` and `details`."""

    def __init__(self, status: int, code: str, message: str, details: Any = None, body: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details, self.body = status, code, message, details, body


class AuthenticationError(APIError):
    """401: no token, or not one the server knows."""


class NotFoundError(APIError):
    """404: no such id, or it belongs to another token."""


class ConflictError(APIError):
    """409: e.g. cancelling an execution that already finished."""


class InvalidRequestError(APIError):
    """400, 413, 415, 422: the request itself is wrong; the message names the problem."""


class RateLimitedError(APIError):
    """429 after the retries ran out (`rate_limited` or `quota_exceeded`); `retry_after` in seconds."""

    retry_after: float | None = None


class ServiceUnavailableError(APIError):
    """503 after the retries ran out (e.g. `broker_unavailable`)."""


class WaitTimeout(RLMClientError):
    """`wait()` gave up before the execution finished; it goes on running on the server."""

    def __init__(self, execution_id: str, seconds: float) -> None:
        super().__init__(f"execution {execution_id} did not finish within {seconds:g} s")
        self.execution_id = execution_id


_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidRequestError,
    415: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitedError,
    503: ServiceUnavailableError,
}


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds (the API sends delta-seconds), or None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def error_from_response(response: httpx.Response) -> APIError:
    """The typed exception for an error response; a body that is not the API's JSON keeps its text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message, details = str(error.get("code")), str(error.get("message")), error.get("details")
    else:
        code, message, details = "http_error", response.text[:500] or response.reason_phrase, None
    cls = _BY_STATUS.get(response.status_code, APIError)
    exc = cls(response.status_code, code, message, details, body)
    if isinstance(exc, RateLimitedError):
        exc.retry_after = retry_after_seconds(response)
    return exc
