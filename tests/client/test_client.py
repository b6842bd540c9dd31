"""`RLMClient` against the real API over HTTP: real workers, Postgres and the scripted model."""

from __future__ import annotations

import pytest

from rlm_client import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    RLMClient,
    WaitTimeout,
)
from tests.client.conftest import CONTEXT, DOCUMENTS_ROOT, QUESTION
from tests.support.scripted_model import turn_index
from tests.support.services import wait_for


def is_root(request) -> bool:
    return any(
        "Recursive Language Model" in str(m.get("content", ""))
        for m in request.get("messages", [])
        if m.get("role") == "system"
    )


def endless_loop(request) -> str:
    """A root program that makes sub-calls until it is stopped."""
    if is_root(request):
        if turn_index(request) == 0:
            return "```repl\nfor i in range(1000):\n    print(llm_query(f'step {i}'))\n```"
        return "FINAL(done)"
    return "ok"


def test_submit_then_wait_gives_the_typed_record(client):
    submitted = client.submit(QUESTION, CONTEXT)
    assert submitted.status in ("queued", "running") and not submitted.finished
    done = client.wait(submitted.id, timeout=60)
    assert done.status == "succeeded" and done.final_answer == "QX-4417" and done.answer_found is True
    assert done.offline is False and done.error is None
    assert done.root_model == "openai/scripted-root" and done.sub_model == "openai/scripted-sub"
    assert done.usage.input_tokens > 0 and done.usage.cost_usd > 0 and done.usage.llm_calls >= 2
    assert done.usage.total_tokens == done.total_input_tokens + done.total_output_tokens


def test_run_reports_no_answer_found(client, scripted):
    execution = client.run(QUESTION, "filler without any code. " * 50, timeout=60)
    assert execution.status == "succeeded" and execution.answer_found is False
    assert execution.final_answer == "NONE"


def test_events_stream_progress_until_the_end(client, scripted):
    scripted.latency = 1.0  # every call takes 1 s or more: the stream opens while the run is in progress
    execution = client.submit(QUESTION, CONTEXT)
    events = list(client.events(execution.id))
    kinds = [e.event for e in events]
    assert kinds[-1] == "end" and "status" in kinds and "node" in kinds
    statuses = [e.data["status"] for e in events if e.event == "status"]
    assert "running" in statuses and statuses[-1] == "succeeded"
    final = events[-1].execution
    assert final is not None and final.final_answer == "QX-4417"
    nodes = [e.node for e in events if e.event == "node"]
    assert {n.kind for n in nodes} >= {"root", "iteration", "code", "llm_call"}
    assert all(n.prompt is None and n.response is None for n in nodes)  # texts only in the trace

    trace = client.trace(execution.id)
    assert trace.execution_id == execution.id
    assert {n.id for n in nodes} == {n.id for n in trace.nodes}
    calls = [n for n in trace.nodes if n.kind == "llm_call"]
    assert calls and all(n.prompt for n in calls) and any(n.response == "QX-4417" for n in calls)


def test_cancel_stops_a_running_execution(client, scripted):
    scripted.responder, scripted.latency = endless_loop, 0.05
    execution = client.submit("loop", "c")
    wait_for(
        lambda: sum(n.kind == "llm_call" for n in client.trace(execution.id).nodes) >= 3,
        timeout=60,
        what="sub-calls",
    )
    cancelled = client.cancel(execution.id)
    assert cancelled.status == "cancelled"
    with pytest.raises(ConflictError) as caught:
        client.cancel(execution.id)
    assert caught.value.status == 409 and caught.value.code == "conflict"
    assert execution.id in caught.value.message


def test_wait_gives_up_with_wait_timeout(client, scripted):
    scripted.responder, scripted.latency = endless_loop, 0.05
    execution = client.submit("loop", "c")
    with pytest.raises(WaitTimeout):
        client.wait(execution.id, timeout=0.5)
    client.cancel(execution.id)


def test_sessions_carry_a_context_and_list_their_executions(client):
    session = client.create_session("client test", CONTEXT, memory={"notes": "first"})
    assert session.name == "client test" and session.context_size == len(CONTEXT)
    assert session.memory == {"notes": "first"}
    assert client.session(session.id).id == session.id
    assert session.id in {s.id for s in client.sessions(limit=200).items}

    execution = client.run(QUESTION, session_id=session.id, timeout=60)
    assert execution.session_id == session.id and execution.final_answer == "QX-4417"
    listed = client.executions(session_id=session.id)
    assert [e.id for e in listed.items] == [execution.id]

    client.delete_session(session.id)
    with pytest.raises(NotFoundError) as caught:
        client.session(session.id)
    assert caught.value.status == 404 and caught.value.code == "not_found"


def test_list_executions_pages_newest_first(client):
    first = client.run(QUESTION, CONTEXT, timeout=60)
    second = client.run(QUESTION, CONTEXT, timeout=60)
    page = client.executions(status="succeeded", limit=1)
    assert [e.id for e in page.items] == [second.id] and page.next_cursor
    following = client.executions(status="succeeded", limit=1, cursor=page.next_cursor)
    assert [e.id for e in following.items] == [first.id]


def test_upload_a_file_and_a_folder(client, tmp_path):
    log = tmp_path / "log.txt"
    log.write_text(CONTEXT, encoding="utf-8")
    execution = client.run(QUESTION, files=log, timeout=60)
    assert execution.status == "succeeded" and execution.final_answer == "QX-4417"

    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("nothing here. " * 20, encoding="utf-8")
    (folder / "sub" / "b.md").write_text(CONTEXT, encoding="utf-8")
    (folder / ".hidden").write_text("The secret code is ZZ-0000.", encoding="utf-8")
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    session = client.create_session("folder", files=folder)
    assert [s["name"] for s in session.skipped or []] == ["photo.png"]
    execution = client.run(QUESTION, session_id=session.id, root_code=DOCUMENTS_ROOT, timeout=60)
    answer, _, names = execution.final_answer.partition(" in ")
    assert answer == "QX-4417" and names.split(",") == ["a.txt", "sub/b.md"]  # no hidden file, no image

    both = client.submit(QUESTION, files=[log, folder], root_code=DOCUMENTS_ROOT)
    assert [s["name"] for s in both.options["skipped"]] == ["docs.zip/photo.png"]
    answer, _, names = client.wait(both.id, timeout=60).final_answer.partition(" in ")
    assert answer == "QX-4417" and "log.txt" in names.split(",")


def test_bad_input_is_a_typed_error_with_the_api_body(client, tmp_path):
    with pytest.raises(InvalidRequestError) as caught:
        client.submit(QUESTION, CONTEXT, options={"max_iterations": 0})
    error = caught.value
    assert error.status == 422 and error.code == "invalid_field"
    assert "options.max_iterations" in error.message
    assert error.details[0]["field"] == "options.max_iterations"
    assert error.body["error"]["code"] == "invalid_field"

    with pytest.raises(InvalidRequestError) as caught:
        client.submit(QUESTION)  # no context, no session
    assert caught.value.status == 400 and caught.value.code == "missing_field"

    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(InvalidRequestError) as caught:
        client.submit(QUESTION, files=empty)
    assert caught.value.status == 422 and caught.value.code == "unreadable_input"
    assert caught.value.message.startswith("empty.txt")


def test_tokens_are_sent_and_checked(token_url, token, scripted):
    with RLMClient(token_url, token=token) as rlm:
        execution = rlm.run(QUESTION, CONTEXT, timeout=60)
        assert execution.final_answer == "QX-4417"
        assert [e.id for e in rlm.executions().items] == [execution.id]  # only this token's
    with RLMClient(token_url, token="not-a-token") as rlm, pytest.raises(AuthenticationError) as caught:
        rlm.get(execution.id)
    assert caught.value.status == 401 and caught.value.code == "unauthorized"
    with RLMClient(token_url, token="") as rlm, pytest.raises(AuthenticationError):
        rlm.executions()


def test_token_and_url_come_from_the_environment(token_url, token, monkeypatch):
    monkeypatch.setenv("RLM_API_URL", token_url)
    monkeypatch.setenv("RLM_API_TOKEN", token)
    with RLMClient() as rlm:
        assert rlm.sessions().items is not None


def test_events_reopen_a_stream_the_server_timed_out(stack_app, celery_workers, scripted):
    """The server ends a stream after API_EVENTS_MAX_SECONDS with `timeout`; the client reopens it."""
    from rlm_api import create_app
    from tests.client.conftest import LiveServer
    from tests.client.test_retries import Recording

    # Every model call takes at least 3 s, so the run cannot end within the first 1-second stream
    # (a floor, not a race): the client must reopen at least once.
    scripted.latency = 3.0
    app = create_app({"API_EVENTS_MAX_SECONDS": 1}, settings=stack_app.config["RLM_SETTINGS"])
    recording = Recording()
    with LiveServer(app) as server, RLMClient(server.url, transport=recording) as rlm:
        execution = rlm.submit(QUESTION, CONTEXT)
        events = list(rlm.events(execution.id))
    assert [e.event for e in events].count("end") == 1 and events[-1].execution.final_answer == "QX-4417"
    assert "timeout" not in {e.event for e in events}
    assert len(recording.seen) >= 3  # submit, then at least two streams
