"""Sessions over HTTP: every way a context can arrive, deduplication, pagination, delete."""

from __future__ import annotations

import io

import sqlalchemy as sa

from rlm_api.database import db
from rlm_shared.models import Context, Execution


def create(client, **body):
    response = client.post("/api/sessions", json={"name": "s", **body})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_session_from_a_json_string_reads_back(client):
    created = create(client, name="10-K review", context="alpha beta", memory={"learnings": "none yet"})
    assert created["name"] == "10-K review" and created["context_size"] == 10
    assert created["memory"] == {"learnings": "none yet"} and created["variables"] == {}
    read = client.get(f"/api/sessions/{created['id']}").get_json()
    assert read == created


def test_identical_contexts_are_stored_once_in_every_form(client, open_app):
    first = create(client, context="the same text")
    second = create(client, context="the same text")
    plain = client.post("/api/sessions?name=plain", data="the same text", content_type="text/plain")
    upload = client.post(
        "/api/sessions",
        data={"name": "upload", "context": (io.BytesIO(b"the same text"), "c.txt", "text/plain")},
        content_type="multipart/form-data",
    )
    assert plain.status_code == upload.status_code == 201
    ids = {
        first["context_id"],
        second["context_id"],
        plain.get_json()["context_id"],
        upload.get_json()["context_id"],
    }
    assert len(ids) == 1
    with open_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Context)) == 1


def test_json_lists_and_objects_stay_structured(client, open_app):
    listed = create(client, context=["a", {"b": 1}])
    uploaded = client.post(
        "/api/sessions",
        data={
            "name": "json file",
            "memory": '{"learnings": "x"}',
            "context": (io.BytesIO(b'{"rows": [1, 2]}'), "c.json", "application/json"),
        },
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 201, uploaded.get_json()
    assert uploaded.get_json()["memory"] == {"learnings": "x"}
    with open_app.app_context():
        kinds = {
            db.session.get(Context, listed["context_id"]).kind,
            db.session.get(Context, uploaded.get_json()["context_id"]).kind,
        }
    assert kinds == {"list", "dict"}


def test_a_session_may_start_without_a_context(client):
    assert create(client)["context_id"] is None


def test_sessions_are_listed_newest_first_one_page_at_a_time(client):
    made = [create(client, name=f"s{i}")["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(f"/api/sessions{query}").get_json()
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]


def test_deleting_a_session_keeps_its_executions(client, open_app):
    session = create(client, context="text")
    started = client.post("/api/execute", json={"user_query": "q", "session_id": session["id"]})
    assert started.status_code == 202
    assert client.delete(f"/api/sessions/{session['id']}").status_code == 204
    assert client.get(f"/api/sessions/{session['id']}").status_code == 404
    assert client.delete(f"/api/sessions/{session['id']}").status_code == 404
    execution = client.get(f"/api/executions/{started.get_json()['execution_id']}").get_json()
    assert execution["session_id"] is None
    with open_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Execution)) == 1


def test_unknown_sessions_are_404_in_json(client):
    for path in ("/api/sessions/" + "0" * 32, "/api/sessions/not-an-id"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"
