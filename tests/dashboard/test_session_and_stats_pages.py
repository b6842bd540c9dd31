"""Sessions (list, one session, the two forms) and the stats page."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from rlm_api.database import db
from rlm_shared.models import Context, Execution, Session
from rlm_shared.queues import ROOT_QUEUE
from rlm_shared.strategies import LOCAL_CHUNK_SIZE
from rlm_worker.engine import local_model
from tests.dashboard.builders import T0, make_execution, make_session


def html(response) -> str:
    return response.get_data(as_text=True)


def test_sessions_list_is_empty_at_first_and_offers_the_form(client):
    body = html(client.get("/sessions"))
    assert "No sessions yet" in body
    assert '<form method="post" action="/sessions"' in body
    assert "csrf_token" not in body  # no CSRF extension installed in this app


def test_sessions_list_shows_size_memory_and_execution_count(app, client):
    session_id = make_session(
        app, name="Quarterly", context="x" * 2500, memory={"learnings": "a", "plan": "b"}
    )
    make_execution(app, trace=False, session_id=session_id)
    body = html(client.get("/sessions"))
    row = body[body.index("Quarterly") :].split("</tr>")[0]
    assert "2.5k characters" in row and ">2<" in row
    assert f"/executions?session={session_id}" in row and ">1</a>" in row


def test_create_session_from_the_form(app, client):
    response = client.post("/sessions", data={"name": "Filing", "context": "The filing is dated 2023-04-01."})
    assert response.status_code == 303
    with app.app_context():
        session = db.session.scalar(sa.select(Session).where(Session.name == "Filing"))
        assert session is not None and response.headers["Location"].endswith(f"/sessions/{session.id}")
        assert db.session.get(Context, session.context_id).content == "The filing is dated 2023-04-01."
    page = html(client.get(response.headers["Location"]))
    assert "<h1>Filing</h1>" in page and "31 characters" in page


def test_create_session_from_an_uploaded_file(app, client):
    from io import BytesIO

    data = {"name": "Upload", "context_file": (BytesIO("café on 2024-01-02".encode()), "notes.txt")}
    response = client.post("/sessions", data=data, content_type="multipart/form-data")
    assert response.status_code == 303
    with app.app_context():
        session = db.session.scalar(sa.select(Session).where(Session.name == "Upload"))
        assert db.session.get(Context, session.context_id).content == "café on 2024-01-02"


def test_create_session_form_errors_are_shown(app, client):
    missing = client.post("/sessions", data={"name": "  ", "context": "x"})
    assert missing.status_code == 400 and "give the session a name" in html(missing)
    too_big = client.post("/sessions", data={"name": "Big", "context": "x" * 10_001})
    assert too_big.status_code == 400 and "the limit is 10,000" in html(too_big)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Session.id))) == 0


def test_session_page_shows_memory_variables_and_executions(app, client):
    session_id = make_session(
        app,
        name="Research",
        memory={"learnings": "dates are in the notes", "plan": ""},
        variables={"dates": ["2023-04-01"], "count": 3},
    )
    make_execution(app, trace=False, session_id=session_id, user_query="which dates?")
    body = html(client.get(f"/sessions/{session_id}"))
    assert "<code>learnings</code>" in body and "dates are in the notes" in body and "(empty)" in body
    assert "<code>dates</code>" in body and "&#34;2023-04-01&#34;" in body
    assert "which dates?" in body and "9 characters" in body
    assert f'action="/sessions/{session_id}/executions"' in body


def test_session_without_anything_shows_empty_states(app, client):
    session_id = make_session(app, name="Bare", context=None)
    body = html(client.get(f"/sessions/{session_id}"))
    assert "No memory yet" in body and "No variables" in body and "No executions in this session yet" in body
    assert "has no context" in body


def test_start_an_execution_from_the_session_form(app, client, broker):
    session_id = make_session(app, name="Run me", context="The filing is dated 2023-04-01.")
    response = client.post(
        f"/sessions/{session_id}/executions",
        data={"user_query": "When is the filing dated?", "max_iterations": "5", "model": "openai/custom"},
    )
    assert response.status_code == 303
    with app.app_context():
        execution = db.session.scalar(sa.select(Execution).where(Execution.session_id == session_id))
        assert response.headers["Location"].endswith(f"/executions/{execution.id}")
        assert execution.status == "queued" and execution.user_query == "When is the filing dated?"
        assert execution.root_model == "openai/custom" and execution.options["max_iterations"] == 5
    # the same launch path as the API: a task message on the root queue carrying only the id
    messages = [json.loads(m) for m in broker.lrange(ROOT_QUEUE, 0, -1)]
    assert len(messages) == 1 and execution.id in json.dumps(messages[0])
    page = html(client.get(response.headers["Location"]))
    assert "When is the filing dated?" in page and 'hx-trigger="every 1500ms"' in page


def test_start_execution_form_errors_are_shown(app, client, broker):
    session_id = make_session(app)
    empty = client.post(f"/sessions/{session_id}/executions", data={"user_query": " "})
    assert empty.status_code == 400 and "ask a question" in html(empty)
    bad = client.post(f"/sessions/{session_id}/executions", data={"user_query": "q", "max_iterations": "0"})
    assert bad.status_code == 400 and "greater than or equal to 1" in html(bad)
    refused = client.post(
        f"/sessions/{session_id}/executions", data={"user_query": "q", "sub_model": "deepinfra/x"}
    )
    assert refused.status_code == 400
    assert "the model &#39;deepinfra/x&#39; is not allowed by MODEL_ALLOWLIST" in html(refused)
    assert broker.llen(ROOT_QUEUE) == 0


def test_the_form_offers_a_strategy_and_a_sub_model(app, client, broker):
    session_id = make_session(app, name="Strategies", context="The filing is dated 2023-04-01.")
    form = html(client.get(f"/sessions/{session_id}"))
    assert '<select name="strategy">' in form and 'value="find"' in form and 'name="sub_model"' in form
    response = client.post(
        f"/sessions/{session_id}/executions",
        data={"user_query": "When?", "strategy": "find", "sub_model": "openai/scripted-sub"},
    )
    assert response.status_code == 303, html(response)
    with app.app_context():
        execution = db.session.scalar(sa.select(Execution).where(Execution.session_id == session_id))
        assert (execution.root_model, execution.sub_model) == ("(strategy find)", "openai/scripted-sub")
        assert execution.options["strategy"] == "find" and execution.offline is False
    bad = client.post(
        f"/sessions/{session_id}/executions",
        data={"user_query": "When?", "strategy": "guess", "sub_model": "nosuchprovider/thing"},
    )
    assert bad.status_code == 400
    assert "one of search, find, map_reduce" in html(bad) and "cannot route the model" in html(bad)
    assert broker.llen(ROOT_QUEUE) == 1


@pytest.mark.skipif(not local_model.available(), reason="the local model is not installed")
def test_a_blank_form_runs_the_offline_plan_when_no_provider_is_configured(app, client, monkeypatch):
    """The same plan as `rlm run` and the API: the local model reads, the `search` strategy roots."""
    for name in ("OPENAI_API_KEY", "LLM_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    # This suite's app has a (never called) LLM_API_BASE; this test's server has none.
    settings = app.config["RLM_SETTINGS"].model_copy(update={"llm_api_base": None})
    monkeypatch.setitem(app.config, "RLM_SETTINGS", settings)
    session_id = make_session(app, name="Offline", context="The filing is dated 2023-04-01.")
    response = client.post(f"/sessions/{session_id}/executions", data={"user_query": "When is it dated?"})
    assert response.status_code == 303, html(response)
    with app.app_context():
        execution = db.session.scalar(sa.select(Execution).where(Execution.session_id == session_id))
        assert execution.offline is True and execution.sub_model == local_model.DEFAULT_LOCAL_MODEL
        assert execution.root_model == "(strategy search)" and execution.options["strategy"] == "search"
        assert execution.options["chunk_size"] == LOCAL_CHUNK_SIZE
    page = html(client.get(response.headers["Location"]))
    assert "Offline plan: no model provider was configured" in page


def test_flower_is_linked_only_where_it_runs(app, client, dashboard_db_url):
    """Embedded mode (`rlm serve`) runs no Celery, so no Flower: no link that leads nowhere."""
    from rlm_api import create_app

    assert "Flower ↗" in html(client.get("/executions"))
    embedded = create_app({"RLM_DISPATCH": "embedded"}, settings=app.config["RLM_SETTINGS"])
    body = html(embedded.test_client().get("/executions"))
    assert "Executions" in body and "Flower" not in body


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert response.get_data(as_text=True).startswith("<svg")


def test_forms_carry_a_csrf_token_when_the_app_provides_one(app, client):
    session_id = make_session(app)
    app.jinja_env.globals["csrf_token"] = lambda: "token-123"
    try:
        for url in ("/sessions", f"/sessions/{session_id}"):
            assert '<input type="hidden" name="csrf_token" value="token-123">' in html(client.get(url))
    finally:
        del app.jinja_env.globals["csrf_token"]


def test_stats_empty(client):
    body = html(client.get("/stats"))
    assert "No executions yet, so nothing to count" in body


def test_stats_totals_and_charts(app, client):
    make_execution(app, created_at=T0)
    make_execution(app, created_at=T0 + timedelta(days=1), status="failed", total_cost_usd=0.5)
    body = html(client.get("/stats"))
    assert "$0.5123" in body and "3,000" in body
    assert body.count("<svg") == 5
    assert "<title>succeeded: 1</title>" in body and "<title>failed: 1</title>" in body
    assert "<title>openai/gpt-4o-mini: $0.002000</title>" in body
    assert "<title>03-01: $0.0123</title>" in body and "<title>03-02: $0.5000</title>" in body


def test_stats_count_model_calls_as_the_by_model_table_and_no_answer_apart(app, client):
    """#32: "Model calls 253" beside a by-model "Calls 1,556" (cancelled calls counted there), and
    runs that found no answer counted as succeeded."""
    import re

    from rlm_api.database import db
    from rlm_shared.models import TraceNode

    make_execution(app, created_at=T0)
    built = make_execution(app, created_at=T0, final_answer="NONE", answer_found=False)
    with app.app_context():  # one more sub-call, cancelled before the model answered
        db.session.add(
            TraceNode(
                id="c" * 32,
                execution_id=built.execution_id,
                kind="llm_call",
                path="0009",
                model="openai/gpt-4o-mini",
                status="cancelled",
                input_tokens=0,
                output_tokens=0,
            )
        )
        db.session.commit()
    body = html(client.get("/stats"))

    def card(label: str) -> int:
        return int(re.search(rf"{re.escape(label)}</dt><dd>([\d,]+)<", body).group(1).replace(",", ""))

    rows = re.findall(
        r"<tr><td><code>([^<]+)</code></td><td class=\"num\">([\d,]+)</td><td class=\"num\">([\d,]+)</td>",
        body,
    )
    assert sum(int(calls) for _, calls, _ in rows) == card("Model calls") == 8
    assert card("Cancelled before an answer") == 1
    assert dict((m, int(c)) for m, _, c in rows)["openai/gpt-4o-mini"] == 1
    assert card("Runs with no answer found") == 1
    assert "<title>succeeded: 1</title>" in body and "<title>no answer found: 1</title>" in body
