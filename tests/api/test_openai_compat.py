"""`/v1/chat/completions` and `/v1/models` with the real openai SDK as the client.

The API runs as a real HTTP server on loopback (werkzeug, threaded) over a private Postgres
database, executions on the embedded runner, the scripted OpenAI-compatible model for their calls.
"""

from __future__ import annotations

import threading

import httpx
import openai
import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from rlm_api.chat_request import ChatMessage, ChatRequestError, question_of_whole_message, read_messages
from rlm_shared.config import get_settings
from rlm_worker import services
from tests.api.conftest import ALICE, BOB, make_app
from tests.api.test_live import CONTEXT, is_root
from tests.support.scripted_model import ScriptedError

QUESTION = "What is the secret code?"
NO_SECRET = "filler text. " * 800


@pytest.fixture(scope="module")
def api_url(api_db_url, model_server):
    """The API with two tokens, an alias and an allow-list, served over HTTP in embedded mode (the
    runner on threads of this process, as under `rlm serve`); `<url>/v1` is the openai base URL.
    The runner's model client is built from the environment, so that points at the scripted model."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLM_API_BASE", model_server.url)
        patch.setenv("LLM_API_KEY", "scripted")
        for cached in (get_settings, services.model_client):
            cached.cache_clear()
        app = make_app(
            api_db_url,
            config={"RLM_DISPATCH": "embedded", "API_EVENTS_POLL_SECONDS": 0.05},
            llm_api_base=model_server.url,
            llm_api_key="scripted",
            default_model="openai/scripted-root",
            sub_model="openai/scripted-sub",
            api_tokens=f"{ALICE},{BOB}",
            api_rate_limit="1000/minute",
            model_allowlist="openai/scripted-*,local/*",
            openai_compat_model_aliases="fast=openai/scripted-root,default=rlm",
        )
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_port}", app
        server.shutdown()
        thread.join(timeout=10)
    for cached in (get_settings, services.model_client):
        cached.cache_clear()


@pytest.fixture()
def alice(api_url, scripted):
    return openai.OpenAI(base_url=f"{api_url[0]}/v1", api_key=ALICE, max_retries=0, timeout=60)


@pytest.fixture()
def bob(api_url):
    return openai.OpenAI(base_url=f"{api_url[0]}/v1", api_key=BOB, max_retries=0, timeout=60)


def execution_row(app, execution_id: str):
    from rlm_api.database import db
    from rlm_shared.models import Context, Execution, TraceNode

    with app.app_context():
        execution = db.session.get(Execution, execution_id)
        context = db.session.get(Context, execution.context_id).content
        nodes = db.session.scalars(sa.select(TraceNode).where(TraceNode.execution_id == execution_id)).all()
        return execution, context, nodes


def test_sync_answer_usage_and_execution_id(alice, api_url):
    raw = alice.chat.completions.with_raw_response.create(
        model="rlm/openai/scripted-root",
        messages=[{"role": "system", "content": CONTEXT}, {"role": "user", "content": QUESTION}],
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "QX-4417"
    assert completion.choices[0].finish_reason == "stop"
    rlm = completion.model_extra["rlm"]
    execution_id = rlm["execution_id"]
    assert raw.headers["X-RLM-Execution-Id"] == execution_id and completion.id == f"chatcmpl-{execution_id}"
    assert rlm["answer_found"] is True and rlm["dashboard_url"] == f"/executions/{execution_id}"

    execution, context, nodes = execution_row(api_url[1], execution_id)
    # the rule: the system message is the context, the last user message the question
    assert context == CONTEXT and execution.user_query == QUESTION
    assert execution.root_model == "openai/scripted-root"
    # every model call of the tree: the root model's turns (iterations) and the sub-calls
    calls = [n for n in nodes if n.kind in ("iteration", "llm_call")]
    assert {n.model for n in calls} == {"openai/scripted-root", "openai/scripted-sub"}
    assert completion.usage.prompt_tokens == sum(n.input_tokens for n in calls) > 0
    assert completion.usage.completion_tokens == sum(n.output_tokens for n in calls) > 0
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )

    trace = httpx.get(f"{api_url[0]}{rlm['links']['trace']}", headers={"Authorization": f"Bearer {ALICE}"})
    assert trace.status_code == 200 and len(trace.json()["nodes"]) == len(nodes)
    # the SSE stream both streams read from (`execution_updates`) still numbers its events
    events = httpx.get(f"{api_url[0]}{rlm['links']['events']}", headers={"Authorization": f"Bearer {ALICE}"})
    blocks = [b for b in events.text.split("\n\n") if b.startswith("event:")]
    ids = [
        int(line.removeprefix("id: ")) for b in blocks for line in b.splitlines() if line.startswith("id: ")
    ]
    assert ids == list(range(1, len(blocks) + 1)) and len(blocks) == len(nodes) + 2
    assert blocks[-1].startswith("event: end") and '"final_answer": "QX-4417"' in blocks[-1]


def test_stream_chunks_progress_and_usage(alice, api_url, scripted):
    scripted.latency = 0.2  # long enough for progress to be seen while it runs
    stream = alice.chat.completions.create(
        model="fast",
        messages=[{"role": "system", "content": CONTEXT}, {"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "QX-4417"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    execution_id = chunks[0].model_extra["rlm"]["execution_id"]
    execution, _, _ = execution_row(api_url[1], execution_id)
    assert chunks[-1].usage.prompt_tokens == execution.total_input_tokens > 0
    assert chunks[-1].usage.completion_tokens == execution.total_output_tokens > 0

    # On the wire: progress as SSE comments (which the SDK skipped above), then [DONE].
    body = {
        "model": "rlm/openai/scripted-root",
        "messages": [{"role": "system", "content": CONTEXT}, {"role": "user", "content": QUESTION}],
        "stream": True,
    }
    with httpx.stream(
        "POST", f"{api_url[0]}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {ALICE}"}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["X-RLM-Execution-Id"]
        lines = [line for line in response.iter_lines() if line]
    progress = [line for line in lines if line.startswith(": progress ")]
    assert any('"event": "node"' in line and '"kind": "llm_call"' in line for line in progress)
    assert any('"status": "running"' in line for line in progress)
    assert lines[-1] == "data: [DONE]"
    assert not any(line.startswith("data:") and '"usage"' in line for line in lines)  # not asked for


def test_one_user_message_is_context_and_question(alice, api_url):
    """What most chat clients send, and the reference's `completion(prompt)`: one user message
    holding the document and the question. The whole message is the context and the question."""
    message = f"{CONTEXT}\n\n{QUESTION}"
    completion = alice.chat.completions.create(
        model="rlm/openai/scripted-root", messages=[{"role": "user", "content": message}]
    )
    assert completion.choices[0].message.content == "QX-4417"
    execution, context, _ = execution_row(api_url[1], completion.model_extra["rlm"]["execution_id"])
    assert context == message and execution.user_query == question_of_whole_message(message)

    stream = alice.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": message}], stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "QX-4417"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    execution, context, _ = execution_row(api_url[1], chunks[0].model_extra["rlm"]["execution_id"])
    assert context == message and execution.status == "succeeded"


def test_not_found_is_a_stop_with_the_sentence(alice):
    completion = alice.chat.completions.create(
        model="rlm/openai/scripted-root",
        messages=[{"role": "system", "content": NO_SECRET}, {"role": "user", "content": QUESTION}],
    )
    rlm = completion.model_extra["rlm"]
    assert completion.choices[0].finish_reason == "stop"
    assert rlm["answer_found"] is False and rlm["status"] == "succeeded"
    assert completion.choices[0].message.content.startswith("No answer found: the context does not seem")
    assert rlm["execution_id"] in completion.choices[0].message.content


def test_extension_field_names_the_context_and_strategy(alice, api_url):
    completion = alice.chat.completions.create(
        model="default",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": QUESTION},
        ],
        extra_body={"rlm": {"context": CONTEXT, "strategy": "find", "options": {"max_iterations": 5}}},
    )
    assert "QX-4417" in completion.choices[0].message.content
    execution, context, _ = execution_row(api_url[1], completion.model_extra["rlm"]["execution_id"])
    # an explicit context: the earlier messages are not used
    assert context == CONTEXT and execution.user_query == QUESTION
    assert execution.options["strategy"] == "find" and execution.options["max_iterations"] == 5
    assert execution.options["timeout_seconds"] == 300.0  # unset options keep the server's defaults

    # the same stored context again, by id; another token cannot use it
    again = alice.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": QUESTION}],
        extra_body={"rlm": {"context_id": execution.context_id}},
    )
    assert again.choices[0].message.content == "QX-4417"
    with pytest.raises(openai.NotFoundError, match="not found"):
        openai.OpenAI(base_url=alice.base_url, api_key=BOB, max_retries=0).chat.completions.create(
            model="fast",
            messages=[{"role": "user", "content": QUESTION}],
            extra_body={"rlm": {"context_id": execution.context_id}},
        )


def test_models_lists_aliases_and_allowed_models(alice, bob):
    ids = [m.id for m in alice.models.list()]
    assert ids[:3] == ["rlm", "fast", "default"]
    assert "rlm/openai/gpt-4o-mini" not in ids  # off the allow-list
    assert alice.models.retrieve("rlm/openai/scripted-sub").id == "rlm/openai/scripted-sub"
    with pytest.raises(openai.NotFoundError):
        alice.models.retrieve("gpt-4o")


def test_failed_execution_is_an_error_that_is_not_retried(api_url, scripted):
    def responder(request):
        if is_root(request):
            raise ScriptedError(400, "the scripted root refuses")
        return "NONE"

    scripted.responder = responder
    client = openai.OpenAI(base_url=f"{api_url[0]}/v1", api_key=ALICE, max_retries=2)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="rlm/openai/scripted-root",
            messages=[{"role": "system", "content": CONTEXT}, {"role": "user", "content": QUESTION}],
        )
    error = caught.value
    assert error.code == "execution_failed" and error.response.headers["x-should-retry"] == "false"
    execution_id = error.response.headers["X-RLM-Execution-Id"]
    assert execution_id in error.message
    execution, _, _ = execution_row(api_url[1], execution_id)
    assert execution.status == "failed"
    from rlm_api.database import db
    from rlm_shared.models import Execution

    with api_url[1].app_context():  # the SDK did not retry: one execution for the question
        count = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Execution)
            .where(Execution.created_at >= execution.created_at)
        )
    assert count == 1

    # the same failure while streaming: the SDK raises on the error event
    stream = client.chat.completions.create(
        model="rlm/openai/scripted-root",
        messages=[{"role": "system", "content": CONTEXT}, {"role": "user", "content": QUESTION}],
        stream=True,
    )
    with pytest.raises(openai.APIError, match="failed"):
        list(stream)


def test_bad_requests_raise_the_sdks_typed_errors(alice, bob, api_url):
    messages = [{"role": "system", "content": CONTEXT}, {"role": "user", "content": QUESTION}]
    with pytest.raises(openai.NotFoundError, match="rlm/<root model>") as caught:
        alice.chat.completions.create(model="gpt-4o", messages=messages)
    assert caught.value.body["param"] == "model" and caught.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        alice.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
    with pytest.raises(openai.PermissionDeniedError, match="MODEL_ALLOWLIST"):
        alice.chat.completions.create(model="rlm/openai/gpt-4o-mini", messages=messages)
    with pytest.raises(openai.BadRequestError, match="litellm cannot route") as caught:
        alice.chat.completions.create(model="rlm/nonsense-model", messages=messages)
    assert caught.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError, match="messages") as caught:
        alice.chat.completions.create(model="rlm", messages=[])
    assert caught.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError, match="last message must be the user's question"):
        alice.chat.completions.create(
            model="rlm", messages=[*messages, {"role": "assistant", "content": "x"}]
        )
    with pytest.raises(openai.BadRequestError, match="rlm.options.max_iterations"):
        alice.chat.completions.create(
            model="rlm", messages=messages, extra_body={"rlm": {"options": {"max_iterations": 0}}}
        )
    with pytest.raises(openai.BadRequestError, match="rlm.bogus"):
        alice.chat.completions.create(model="rlm", messages=messages, extra_body={"rlm": {"bogus": 1}})
    with pytest.raises(openai.BadRequestError, match="n must be 1"):
        alice.chat.completions.create(model="rlm", messages=messages, n=2)
    wrong = openai.OpenAI(base_url=f"{api_url[0]}/v1", api_key="not-a-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="rlm", messages=messages)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_another_tokens_execution_is_unreachable(alice, bob, api_url):
    completion = alice.chat.completions.create(
        model="fast", messages=[{"role": "system", "content": CONTEXT}, {"role": "user", "content": QUESTION}]
    )
    execution_id = completion.model_extra["rlm"]["execution_id"]
    for path in (f"/api/executions/{execution_id}", f"/api/executions/{execution_id}/trace"):
        assert httpx.get(f"{api_url[0]}{path}", headers={"Authorization": f"Bearer {BOB}"}).status_code == 404
        assert (
            httpx.get(f"{api_url[0]}{path}", headers={"Authorization": f"Bearer {ALICE}"}).status_code == 200
        )


def test_no_provider_means_the_offline_plan(api_db_url, broker, clean, monkeypatch):
    """No LLM_API_BASE and no key: `rlm` gets the plan `POST /api/execute` would (nobody runs it here)."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    app = make_app(
        api_db_url,
        config={"OPENAI_COMPAT_MAX_WAIT_SECONDS": 0.2},
        llm_api_base=None,
        default_model="openai/gpt-4o-mini",
    )
    client = app.test_client()
    messages = [{"role": "system", "content": CONTEXT}, {"role": "user", "content": QUESTION}]
    response = client.post("/v1/chat/completions", json={"model": "rlm", "messages": messages})
    assert response.status_code == 504 and response.get_json()["error"]["code"] == "execution_still_running"
    execution_id = response.headers["X-RLM-Execution-Id"]
    execution = client.get(f"/api/executions/{execution_id}").get_json()
    assert execution["offline"] is True and execution["sub_model"] == "local/smollm2"
    assert execution["options"]["strategy"] == "search"
    refused = client.post(
        "/v1/chat/completions", json={"model": "rlm/openai/gpt-4o-mini", "messages": messages}
    )
    assert refused.status_code == 400 and "OPENAI_API_KEY" in refused.get_json()["error"]["message"]


def _messages(*pairs) -> list[ChatMessage]:
    return [ChatMessage.model_validate({"role": role, "content": content}) for role, content in pairs]


def test_the_context_and_question_rule():
    doc, question = "the long document " * 20, "What does it say?"
    assert read_messages(_messages(("system", doc), ("user", question)), False).context == doc
    # every earlier message, in order, joined by blank lines; the last user message is the question
    read = read_messages(
        _messages(("system", "Be brief."), ("user", doc), ("assistant", "Ok."), ("user", question)), False
    )
    assert read.context == f"Be brief.\n\n{doc}\n\nOk." and read.question == question
    # several text parts: the largest is context, the rest the question
    parts = [{"type": "text", "text": question}, {"type": "text", "text": doc}]
    read = read_messages(_messages(("user", parts)), False)
    assert read.context == doc and read.question == question
    read = read_messages(_messages(("system", "Notes."), ("user", parts)), False)
    assert read.context == f"Notes.\n\n{doc}" and read.question == question
    # an explicit context: the whole last message is the question, earlier ones unused
    read = read_messages(_messages(("system", doc), ("user", parts)), True)
    assert read.context is None and read.question == f"{question}\n\n{doc}"
    # one user message alone: it is the context, and the question too
    read = read_messages(_messages(("user", f"{doc}\n{question}")), False)
    assert read.context == read.question == f"{doc}\n{question}"
    read = read_messages(_messages(("system", "  "), ("user", question)), False)
    assert read.context == read.question == question
    # a long one is the whole context; the root is shown its two ends as the question
    long = f"{question}\n{'x' * 50_000}\nAnswer in one word."
    read = read_messages(_messages(("user", long)), False)
    assert read.context == long and len(read.question) < 3_200
    assert read.question.startswith(question) and read.question.endswith("Answer in one word.")
    assert "47,0" in read.question and "is `context`" in read.question
    with pytest.raises(ChatRequestError, match="only text parts"):
        read_messages(
            _messages(("system", doc), ("user", [{"type": "image_url", "image_url": {"url": "x"}}])), False
        )
    with pytest.raises(ChatRequestError, match="is empty"):
        read_messages(_messages(("system", doc), ("user", "  ")), False)
