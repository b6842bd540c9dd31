"""`RLMClient`: the API from Python, synchronously (`aio.AsyncRLMClient` is the same, awaited).

with RLMClient("http://localhost:8000", token="...") as rlm:
    execution = rlm.run("Which ports did the ship call at?", files="samples/northern_tern_log.txt")
    print(execution.final_answer, execution.usage.cost_usd)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
from httpx_sse import connect_sse
from tenacity import Retrying

from rlm_client import calls
from rlm_client.errors import WaitTimeout
from rlm_client.http import RetryPolicy, checked, client_options
from rlm_client.models import Event, Execution, Page, Session, Trace
from rlm_client.uploads import PathLike

#: Longest a single `POST /api/execute` may block on the server (its `wait` cap).
SERVER_WAIT_CAP = 60.0
#: Read timeout of the event stream: the server sends a keep-alive every 15 s.
EVENTS_READ_TIMEOUT = 60.0


def poll_delays(first: float = 0.2, most: float = 2.0) -> Iterator[float]:
    delay = first
    while True:
        yield delay
        delay = min(delay * 1.5, most)


class RLMClient:
    """Submit, wait, stream, trace, cancel, sessions and uploads over one `httpx.Client`.

    `base_url` and `token` default to `RLM_API_URL` and `RLM_API_TOKEN`. `retry` sets how 429 and
    503 answers are retried (`RetryPolicy(attempts=1)` turns retries off). `transport` replaces
    the network (e.g. `rlm_client.embedded.embedded_transport()` runs the API in this process).
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | httpx.Timeout = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(**client_options(base_url, token, timeout, transport))

    def __enter__(self) -> RLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: calls.Call) -> Any:
        def once() -> httpx.Response:
            return self._http.request(call.method, call.path, **call.kwargs)

        return call.parse(checked(Retrying(**self.retry.tenacity_kwargs())(once)))

    # --- executions -------------------------------------------------------------------------

    def submit(
        self,
        question: str,
        context: Any = None,
        *,
        files: PathLike | Iterable[PathLike] | None = None,
        session_id: str | None = None,
        model: str | None = None,
        sub_model: str | None = None,
        options: dict[str, Any] | None = None,
        strategy: str | None = None,
        root_code: str | None = None,
        wait: float | None = None,
        max_concurrent_subcalls: int | None = None,
    ) -> Execution:
        """Start an execution over `context` (a string, list or dict), `files` (paths of files or
        folders) or a session's context. Returns at once (`queued`) unless `wait` seconds (≤ 60)
        are given, then as soon as it finishes or the time is up. `max_concurrent_subcalls`: how
        many of its sub-calls may be in flight at once (the option of that name)."""
        return self._send(
            calls.submit(
                question,
                context,
                files=files,
                session_id=session_id,
                model=model,
                sub_model=sub_model,
                options=options,
                strategy=strategy,
                root_code=root_code,
                wait=wait,
                max_concurrent_subcalls=max_concurrent_subcalls,
            )
        )

    def get(self, execution_id: str) -> Execution:
        return self._send(calls.get_execution(execution_id))

    def wait(self, execution_id: str, timeout: float | None = None) -> Execution:
        """The execution once finished (any final status); `WaitTimeout` after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for delay in poll_delays():
            execution = self.get(execution_id)
            if execution.finished:
                return execution
            if deadline is not None and time.monotonic() + delay > deadline:
                raise WaitTimeout(execution_id, timeout or 0.0)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def run(
        self, question: str, context: Any = None, *, timeout: float | None = None, **kwargs: Any
    ) -> Execution:
        """Submit and wait for the finished execution (its `status` says how it ended)."""
        started = time.monotonic()
        first_wait = min(SERVER_WAIT_CAP, timeout) if timeout is not None else SERVER_WAIT_CAP
        execution = self.submit(question, context, wait=first_wait, **kwargs)
        if execution.finished:
            return execution
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
        return self.wait(execution.id, left)

    def events(self, execution_id: str) -> Iterator[Event]:
        """Progress as it happens: `status` and `node` events, then `end` with the full record.
        A stream the server closes after its maximum duration is reopened (nodes are re-sent)."""
        timeout = httpx.Timeout(30.0, read=EVENTS_READ_TIMEOUT)
        path = f"/api/executions/{execution_id}/events"
        while True:
            with connect_sse(self._http, "GET", path, timeout=timeout) as source:
                if not source.response.is_success:
                    source.response.read()
                    checked(source.response)
                for sse in source.iter_sse():
                    event = Event.parse(sse.event, sse.data, sse.id)
                    if event.event != "timeout":
                        yield event
                    if event.event == "end":
                        return

    def trace(self, execution_id: str) -> Trace:
        return self._send(calls.trace(execution_id))

    def cancel(self, execution_id: str) -> Execution:
        """Cancel a queued or running execution and its whole tree (`ConflictError` if it ended)."""
        return self._send(calls.cancel(execution_id))

    def executions(
        self,
        status: str | None = None,
        session_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Execution]:
        return self._send(calls.list_executions(status, session_id, limit, cursor))

    # --- sessions ---------------------------------------------------------------------------

    def create_session(
        self,
        name: str,
        context: Any = None,
        *,
        files: PathLike | Iterable[PathLike] | None = None,
        memory: dict[str, str] | None = None,
    ) -> Session:
        return self._send(calls.create_session(name, context, files=files, memory=memory))

    def session(self, session_id: str) -> Session:
        return self._send(calls.get_session(session_id))

    def sessions(self, limit: int = 50, cursor: str | None = None) -> Page[Session]:
        return self._send(calls.list_sessions(limit, cursor))

    def delete_session(self, session_id: str) -> None:
        self._send(calls.delete_session(session_id))

    def stats(self) -> dict[str, Any]:
        """Totals over this token's executions, and calls, tokens and cost per model."""
        return self._send(calls.stats())
