"""`AsyncRLMClient`: `RLMClient`'s calls for asyncio code, over one `httpx.AsyncClient`.

async with AsyncRLMClient("http://localhost:8000", token="...") as rlm:
    execution = await rlm.submit("Which ports?", files="log.txt")
    async for event in rlm.events(execution.id):
        print(event.event, event.data.get("status"))
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from tenacity import AsyncRetrying

from rlm_client import calls
from rlm_client.client import EVENTS_READ_TIMEOUT, SERVER_WAIT_CAP, poll_delays
from rlm_client.errors import WaitTimeout
from rlm_client.http import RetryPolicy, checked, client_options
from rlm_client.models import Event, Execution, Page, Session, Trace
from rlm_client.uploads import PathLike


class AsyncRLMClient:
    """The async twin of `RLMClient`: same methods, same arguments, awaited."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | httpx.Timeout = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(**client_options(base_url, token, timeout, transport))

    async def __aenter__(self) -> AsyncRLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: calls.Call) -> Any:
        async def once() -> httpx.Response:
            return await self._http.request(call.method, call.path, **call.kwargs)

        return call.parse(checked(await AsyncRetrying(**self.retry.tenacity_kwargs())(once)))

    async def submit(
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
        return await self._send(
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

    async def get(self, execution_id: str) -> Execution:
        return await self._send(calls.get_execution(execution_id))

    async def wait(self, execution_id: str, timeout: float | None = None) -> Execution:
        deadline = None if timeout is None else time.monotonic() + timeout
        for delay in poll_delays():
            execution = await self.get(execution_id)
            if execution.finished:
                return execution
            if deadline is not None and time.monotonic() + delay > deadline:
                raise WaitTimeout(execution_id, timeout or 0.0)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def run(
        self, question: str, context: Any = None, *, timeout: float | None = None, **kwargs: Any
    ) -> Execution:
        started = time.monotonic()
        first_wait = min(SERVER_WAIT_CAP, timeout) if timeout is not None else SERVER_WAIT_CAP
        execution = await self.submit(question, context, wait=first_wait, **kwargs)
        if execution.finished:
            return execution
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
        return await self.wait(execution.id, left)

    async def events(self, execution_id: str) -> AsyncIterator[Event]:
        timeout = httpx.Timeout(30.0, read=EVENTS_READ_TIMEOUT)
        path = f"/api/executions/{execution_id}/events"
        while True:
            async with aconnect_sse(self._http, "GET", path, timeout=timeout) as source:
                if not source.response.is_success:
                    await source.response.aread()
                    checked(source.response)
                async for sse in source.aiter_sse():
                    event = Event.parse(sse.event, sse.data, sse.id)
                    if event.event != "timeout":
                        yield event
                    if event.event == "end":
                        return

    async def trace(self, execution_id: str) -> Trace:
        return await self._send(calls.trace(execution_id))

    async def cancel(self, execution_id: str) -> Execution:
        return await self._send(calls.cancel(execution_id))

    async def executions(
        self,
        status: str | None = None,
        session_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Execution]:
        return await self._send(calls.list_executions(status, session_id, limit, cursor))

    async def create_session(
        self,
        name: str,
        context: Any = None,
        *,
        files: PathLike | Iterable[PathLike] | None = None,
        memory: dict[str, str] | None = None,
    ) -> Session:
        return await self._send(calls.create_session(name, context, files=files, memory=memory))

    async def session(self, session_id: str) -> Session:
        return await self._send(calls.get_session(session_id))

    async def sessions(self, limit: int = 50, cursor: str | None = None) -> Page[Session]:
        return await self._send(calls.list_sessions(limit, cursor))

    async def delete_session(self, session_id: str) -> None:
        await self._send(calls.delete_session(session_id))

    async def stats(self) -> dict[str, Any]:
        return await self._send(calls.stats())
