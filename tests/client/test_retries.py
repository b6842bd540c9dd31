"""Retries on 429 and 503: the real API's rate limiter, and a scripted server at the edge for 503."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest

from rlm_client import AsyncRLMClient, RateLimitedError, RetryPolicy, RLMClient, ServiceUnavailableError
from tests.client.conftest import LiveServer, token_app
from tests.client.loopback import EXECUTION, ScriptedAPI, api_error

RATE_LIMITED = (429, {"Retry-After": "2"}, api_error("rate_limited", "this token may make 2 per 1 second"))
OK = (200, {}, EXECUTION)


class Recording(httpx.HTTPTransport):
    """The real transport, noting each response's status and `Retry-After` as it arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, str | None]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.seen.append((response.status_code, response.headers.get("Retry-After")))
        return response


def test_the_real_rate_limiter_is_waited_out(stack_settings, celery_workers):
    token = secrets.token_urlsafe(24)
    recording = Recording()
    with LiveServer(token_app(stack_settings, token, api_rate_limit="2/second")) as server:
        with RLMClient(server.url, token=token, transport=recording) as rlm:
            for _ in range(5):
                assert rlm.sessions(limit=1).items is not None
    limited = [retry_after for status, retry_after in recording.seen if status == 429]
    assert limited, f"the limiter never answered 429: {recording.seen}"
    assert all(value is not None and int(value) >= 1 for value in limited)
    assert sum(status == 200 for status, _ in recording.seen) == 5


def test_retry_after_is_honoured_and_the_body_sent_again(tmp_path):
    upload = tmp_path / "notes.txt"
    upload.write_text("some notes", encoding="utf-8")
    with ScriptedAPI([RATE_LIMITED, OK]) as api, RLMClient(api.url) as rlm:
        execution = rlm.submit("question?", files=upload)
    assert execution.final_answer == "42" and execution.answer_found is True
    (first, *_, first_body), (second, *_, second_body) = api.requests
    assert second - first >= 1.95  # Retry-After: 2 (a backoff alone would wait 0.5 to 1.5 s)
    # the same parts again (each request has a boundary of its own)
    assert (
        len(first_body) == len(second_body) and b"some notes" in second_body and b"question?" in second_body
    )


def test_503_without_retry_after_backs_off_and_succeeds():
    unavailable = (503, {}, api_error("broker_unavailable", "the execution could not be enqueued; try again"))
    with ScriptedAPI([unavailable, unavailable, OK]) as api:
        with RLMClient(api.url, retry=RetryPolicy(initial=0.05, max_wait=0.2)) as rlm:
            assert rlm.get("a" * 32).status == "succeeded"
    assert len(api.requests) == 3


def test_out_of_retries_is_a_typed_error():
    with ScriptedAPI([(429, {"Retry-After": "0"}, api_error("quota_exceeded", "20 executions"))]) as api:
        with (
            RLMClient(api.url, retry=RetryPolicy(attempts=3)) as rlm,
            pytest.raises(RateLimitedError) as caught,
        ):
            rlm.submit("q", "context")
    assert len(api.requests) == 3
    error = caught.value
    assert error.status == 429 and error.code == "quota_exceeded" and error.retry_after == 0
    assert error.message == "20 executions"

    with ScriptedAPI([(503, {}, "<html>bad gateway</html>")]) as api:
        with RLMClient(api.url, retry=RetryPolicy(attempts=1)) as rlm, pytest.raises(ServiceUnavailableError):
            rlm.get("a" * 32)
    assert len(api.requests) == 1  # attempts=1: no retry


def test_async_client_retries_too():
    async def main():
        async with AsyncRLMClient(api.url) as rlm:
            return await rlm.get("a" * 32)

    with ScriptedAPI([RATE_LIMITED, OK]) as api:
        execution = asyncio.run(main())
    assert execution.status == "succeeded"
    assert api.requests[1][0] - api.requests[0][0] >= 1.95
