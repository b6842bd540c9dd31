"""`AsyncRLMClient` against the real API: the same calls as the sync client, awaited."""

from __future__ import annotations

import asyncio

import pytest

from rlm_client import AsyncRLMClient, AuthenticationError, InvalidRequestError
from tests.client.conftest import CONTEXT, DOCUMENTS_ROOT, QUESTION
from tests.client.test_client import endless_loop


def test_submit_wait_events_trace(api_url, scripted):
    scripted.latency = 0.2

    async def main():
        async with AsyncRLMClient(api_url) as rlm:
            execution = await rlm.submit(QUESTION, CONTEXT)
            events = [event async for event in rlm.events(execution.id)]
            done = await rlm.wait(execution.id, timeout=60)
            trace = await rlm.trace(execution.id)
            listed = await rlm.executions(status="succeeded", limit=5)
            return execution, events, done, trace, listed

    execution, events, done, trace, listed = asyncio.run(main())
    assert events[-1].event == "end" and events[-1].execution.final_answer == "QX-4417"
    assert any(e.event == "node" for e in events) and any(e.event == "status" for e in events)
    assert done.status == "succeeded" and done.answer_found is True and done.usage.cost_usd > 0
    assert {n.id for n in trace.nodes} == {e.node.id for e in events if e.event == "node"}
    assert execution.id in {e.id for e in listed.items}


def test_several_executions_at_once(api_url, scripted):
    async def main():
        async with AsyncRLMClient(api_url) as rlm:
            return await asyncio.gather(*(rlm.run(QUESTION, CONTEXT, timeout=60) for _ in range(3)))

    results = asyncio.run(main())
    assert [r.final_answer for r in results] == ["QX-4417"] * 3
    assert len({r.id for r in results}) == 3


def test_cancel_sessions_and_uploads(api_url, scripted, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "log.txt").write_text(CONTEXT, encoding="utf-8")

    async def main():
        async with AsyncRLMClient(api_url) as rlm:
            session = await rlm.create_session("async", files=folder)
            answered = await rlm.run(QUESTION, session_id=session.id, root_code=DOCUMENTS_ROOT, timeout=60)
            scripted.responder, scripted.latency = endless_loop, 0.05
            looping = await rlm.submit("loop", "c")
            cancelled = await rlm.cancel(looping.id)
            sessions = await rlm.sessions(limit=200)
            await rlm.delete_session(session.id)
            return session, answered, cancelled, sessions

    session, answered, cancelled, sessions = asyncio.run(main())
    assert session.context_size and answered.final_answer == "QX-4417 in log.txt"
    assert cancelled.status == "cancelled"
    assert session.id in {s.id for s in sessions.items}


def test_errors_are_typed(api_url, token_url):
    async def bad_input():
        async with AsyncRLMClient(api_url) as rlm:
            await rlm.submit(QUESTION, CONTEXT, strategy="no-such-strategy")

    with pytest.raises(InvalidRequestError) as caught:
        asyncio.run(bad_input())
    assert caught.value.status == 422 and caught.value.code == "invalid_field"
    assert caught.value.details[0]["field"] == "strategy"

    async def bad_token():
        async with AsyncRLMClient(token_url, token="wrong") as rlm:
            await rlm.sessions()

    with pytest.raises(AuthenticationError) as caught:
        asyncio.run(bad_token())
    assert caught.value.code == "unauthorized"
