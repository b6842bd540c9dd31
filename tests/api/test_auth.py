"""API tokens: who may call, whose rows they see, how often, and that no token ever leaks."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from rlm_api.auth import token_hash
from rlm_api.database import db
from rlm_shared.models import Context, Execution, Session
from tests.api.conftest import ALICE, BOB, MAX_CONTEXT, bearer, make_app

ROOT = Path(__file__).resolve().parents[2]


def test_without_a_valid_token_every_api_call_is_401(token_client):
    for headers in (
        {},
        bearer("wrong-token"),
        {"Authorization": f"Basic {ALICE}"},
        {"Authorization": "Bearer"},
    ):
        for method, path in (("get", "/api/executions"), ("post", "/api/execute"), ("get", "/api/stats")):
            response = getattr(token_client, method)(path, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.get_json()["error"]["code"] == "unauthorized"
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_health_and_the_openapi_document_need_no_token(token_client):
    assert token_client.get("/api/health").status_code == 200
    assert token_client.get("/api/openapi.json").get_json()["openapi"].startswith("3.1")


def test_rows_belong_to_the_token_that_made_them(token_client, token_app):
    session = token_client.post("/api/sessions", json={"name": "mine", "context": "c"}, headers=bearer(ALICE))
    started = token_client.post(
        "/api/execute",
        json={"user_query": "q", "session_id": session.get_json()["id"]},
        headers=bearer(ALICE),
    )
    assert session.status_code == 201 and started.status_code == 202
    session_id, execution_id = session.get_json()["id"], started.get_json()["execution_id"]

    for path in (
        f"/api/sessions/{session_id}",
        f"/api/executions/{execution_id}",
        f"/api/executions/{execution_id}/trace",
    ):
        assert token_client.get(path, headers=bearer(BOB)).status_code == 404
        assert token_client.get(path, headers=bearer(ALICE)).status_code == 200
    assert token_client.post(f"/api/executions/{execution_id}/cancel", headers=bearer(BOB)).status_code == 404
    assert token_client.delete(f"/api/sessions/{session_id}", headers=bearer(BOB)).status_code == 404
    borrowed = token_client.post(
        "/api/execute", json={"user_query": "q", "session_id": session_id}, headers=bearer(BOB)
    )
    assert borrowed.status_code == 404
    assert token_client.get("/api/executions", headers=bearer(BOB)).get_json()["items"] == []
    assert token_client.get("/api/sessions", headers=bearer(BOB)).get_json()["items"] == []
    assert token_client.get("/api/stats", headers=bearer(BOB)).get_json()["executions"] == 0
    assert len(token_client.get("/api/executions", headers=bearer(ALICE)).get_json()["items"]) == 1

    with token_app.app_context():
        owners = {db.session.get(Session, session_id).owner, db.session.get(Execution, execution_id).owner}
    assert owners == {token_hash(ALICE)}


def test_contexts_are_stored_once_per_token_not_shared_across_tokens(token_client, token_app):
    """Token B uploading A's exact text gets a context of its own, and cannot name A's."""
    text = "confidential merger memo. " * (MAX_CONTEXT // 26)

    def session_context(token: str) -> str:
        created = token_client.post(
            "/api/sessions", json={"name": "s", "context": text}, headers=bearer(token)
        )
        assert created.status_code == 201, created.get_json()
        return created.get_json()["context_id"]

    def execution_context(token: str) -> str:
        started = token_client.post(
            "/api/execute", json={"user_query": "q", "context": text}, headers=bearer(token)
        )
        assert started.status_code == 202, started.get_json()
        record = token_client.get(
            f"/api/executions/{started.get_json()['execution_id']}", headers=bearer(token)
        )
        return record.get_json()["context_id"]

    def dashboard_context(token: str) -> str:
        login_csrf = csrf_of(token_client.get("/login").text)
        token_client.post("/login", data={"token": token, "csrf_token": login_csrf})
        csrf = csrf_of(token_client.get("/sessions").text)
        created = token_client.post("/sessions", data={"name": "form", "context": text, "csrf_token": csrf})
        session_id = created.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
        return token_client.get(f"/api/sessions/{session_id}", headers=bearer(token)).get_json()["context_id"]

    alice = {session_context(ALICE), session_context(ALICE), execution_context(ALICE)}
    bob = {session_context(BOB), session_context(BOB), execution_context(BOB), dashboard_context(BOB)}
    assert len(alice) == 1 and len(bob) == 1  # stored once per token
    assert alice != bob
    with token_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Context)) == 2

    (alices_context,) = alice
    for body in (
        {"user_query": "q", "context_id": alices_context},
        {"name": "s", "context_id": alices_context},
    ):
        path = "/api/execute" if "user_query" in body else "/api/sessions"
        refused = token_client.post(path, json=body, headers=bearer(BOB))
        assert refused.status_code == 422, refused.get_json()  # no request takes a context id


def test_a_token_may_have_only_so_many_active_executions(token_client):
    def start():
        return token_client.post(
            "/api/execute", json={"user_query": "q", "context": "c"}, headers=bearer(ALICE)
        )

    first, second = start(), start()
    assert first.status_code == second.status_code == 202
    refused = start()
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "quota_exceeded" and int(refused.headers["Retry-After"]) > 0
    assert (
        token_client.post(
            "/api/execute", json={"user_query": "q", "context": "c"}, headers=bearer(BOB)
        ).status_code
        == 202
    )
    token_client.post(f"/api/executions/{first.get_json()['execution_id']}/cancel", headers=bearer(ALICE))
    assert start().status_code == 202


@pytest.fixture()
def limited_app(api_db_url, broker, clean):
    broker.flushdb()
    return make_app(api_db_url, api_tokens=f"{ALICE},{BOB}", api_rate_limit="3/minute")


def test_each_token_has_a_request_rate_shared_through_redis(limited_app, api_db_url, broker):
    client = limited_app.test_client()
    assert [client.get("/api/stats", headers=bearer(ALICE)).status_code for _ in range(3)] == [200] * 3
    refused = client.get("/api/stats", headers=bearer(ALICE))
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert client.get("/api/stats", headers=bearer(BOB)).status_code == 200
    # a second app (another gunicorn process) over the same Redis sees the same count
    other = make_app(api_db_url, api_tokens=f"{ALICE},{BOB}", api_rate_limit="3/minute").test_client()
    assert other.get("/api/stats", headers=bearer(ALICE)).status_code == 429
    assert any(key.startswith(b"LIMITS") for key in broker.keys())


def test_tokens_never_appear_in_responses_rows_or_logs(token_client, token_app, caplog):
    caplog.set_level(logging.DEBUG)
    bodies = [
        token_client.post("/api/sessions", json={"name": "n", "context": "c"}, headers=bearer(ALICE)),
        token_client.post("/api/execute", json={"user_query": "q", "context": "c"}, headers=bearer(ALICE)),
        token_client.get("/api/executions", headers=bearer(ALICE)),
        token_client.get("/api/stats", headers=bearer(ALICE)),
        token_client.get("/api/health"),
        token_client.get("/api/openapi.json"),
        token_client.get("/api/executions", headers=bearer(ALICE + "x")),
    ]
    for response in bodies:
        text = response.get_data(as_text=True)
        assert ALICE not in text and BOB not in text and token_hash(ALICE) not in text
    assert ALICE not in caplog.text and BOB not in caplog.text
    with token_app.app_context(), db.engine.connect() as conn:
        for table in ("sessions", "executions"):
            for row in conn.execute(sa.text(f"SELECT * FROM {table}")):
                assert ALICE not in str(row)


# -- the dashboard ------------------------------------------------------------------------------


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def test_the_dashboard_asks_for_a_login(token_client):
    response = token_client.get("/sessions")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    page = token_client.get(response.headers["Location"])
    assert page.status_code == 200 and 'name="token"' in page.get_data(as_text=True)


def test_logging_in_needs_a_valid_token_and_the_csrf_token(token_client):
    form = token_client.get("/login?next=/sessions").get_data(as_text=True)
    csrf = csrf_of(form)
    assert token_client.post("/login", data={"token": ALICE, "next": "/sessions"}).status_code == 400
    wrong = token_client.post("/login", data={"token": "nope", "csrf_token": csrf, "next": "/sessions"})
    assert wrong.status_code == 401 and "not valid" in wrong.get_data(as_text=True)
    ok = token_client.post("/login", data={"token": ALICE, "csrf_token": csrf, "next": "/sessions"})
    assert ok.status_code == 302 and ok.headers["Location"] == "/sessions"
    assert token_client.get("/sessions").status_code == 200


def test_the_login_cookie_is_same_site_lax(token_client):
    form = token_client.get("/login")
    csrf = csrf_of(form.get_data(as_text=True))
    ok = token_client.post("/login", data={"token": ALICE, "csrf_token": csrf})
    cookies = form.headers.getlist("Set-Cookie") + ok.headers.getlist("Set-Cookie")
    session_cookies = [c for c in cookies if c.startswith("session=")]
    assert session_cookies and all("SameSite=Lax" in c and "HttpOnly" in c for c in session_cookies), cookies


def test_the_event_stream_needs_the_token_not_the_dashboard_login(token_client):
    """What docs/api.md says of EventSource: with tokens set, a login cookie alone gets 401."""
    started = token_client.post(
        "/api/execute", json={"user_query": "q", "context": "c"}, headers=bearer(ALICE)
    )
    events = f"/api/executions/{started.get_json()['execution_id']}/events"
    login_csrf = csrf_of(token_client.get("/login").text)
    assert token_client.post("/login", data={"token": ALICE, "csrf_token": login_csrf}).status_code == 302
    assert token_client.get("/sessions").status_code == 200  # logged in
    assert token_client.get(events).status_code == 401
    stream = token_client.get(events, headers=bearer(ALICE), buffered=False)
    assert stream.status_code == 200 and stream.mimetype == "text/event-stream"
    stream.close()
    doc = " ".join((ROOT / "docs" / "api.md").read_text().split())
    assert "with the dashboard's login" not in doc
    assert "`EventSource` cannot send an `Authorization` header" in doc
    assert "`/api` never accepts the dashboard's login cookie" in doc


def test_login_never_redirects_off_site(token_client):
    csrf = csrf_of(token_client.get("/login").get_data(as_text=True))
    ok = token_client.post("/login", data={"token": ALICE, "csrf_token": csrf, "next": "//evil.example/x"})
    assert ok.status_code == 302 and ok.headers["Location"] == "/executions"


def test_dashboard_forms_need_the_csrf_token_once_logged_in(token_client):
    csrf = csrf_of(token_client.get("/login").get_data(as_text=True))
    token_client.post("/login", data={"token": ALICE, "csrf_token": csrf})
    page = token_client.get("/sessions").get_data(as_text=True)
    forged = token_client.post("/sessions", data={"name": "forged", "context": "c"})
    assert forged.status_code == 400
    posted = token_client.post(
        "/sessions", data={"name": "real", "context": "c", "csrf_token": csrf_of(page)}
    )
    assert posted.status_code in (200, 302, 303), posted.get_data(as_text=True)[:300]
    logout = token_client.post("/logout", data={"csrf_token": csrf_of(page)})
    assert logout.status_code == 302
    assert token_client.get("/sessions").status_code == 302


def test_without_tokens_the_api_and_dashboard_are_open(client):
    assert client.get("/api/executions").status_code == 200
    assert client.get("/sessions").status_code == 200
    assert client.get("/login").status_code == 302


def test_a_dashboard_login_sees_only_its_own_tokens_rows(token_client):
    mine = token_client.post("/api/sessions", json={"name": "alice-s", "context": "a"}, headers=bearer(ALICE))
    theirs = token_client.post("/api/sessions", json={"name": "bob-s", "context": "b"}, headers=bearer(BOB))
    assert mine.status_code == theirs.status_code == 201
    csrf = csrf_of(token_client.get("/login").get_data(as_text=True))
    token_client.post("/login", data={"token": ALICE, "csrf_token": csrf})
    listing = token_client.get("/sessions").get_data(as_text=True)
    assert "alice-s" in listing and "bob-s" not in listing
    assert token_client.get(f"/sessions/{mine.get_json()['id']}").status_code == 200
    assert token_client.get(f"/sessions/{theirs.get_json()['id']}").status_code == 404
    page = token_client.get("/sessions").get_data(as_text=True)
    created = token_client.post("/sessions", data={"name": "alice-form", "context": "c", "csrf_token": csrf_of(page)})
    assert created.status_code in (302, 303)
    session_id = created.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    assert token_client.get(f"/api/sessions/{session_id}", headers=bearer(ALICE)).status_code == 200
    assert token_client.get(f"/api/sessions/{session_id}", headers=bearer(BOB)).status_code == 404
