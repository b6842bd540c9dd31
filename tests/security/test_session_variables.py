"""A session stores strict JSON only, and a bad value in an old session cannot brick it.

The review's run: root code got past the write guard, made the sandbox send `{"v": 1e999}`, and the
session then held `Infinity`: `GET /api/sessions/<id>` returned invalid JSON and every later
execution failed with "could not start the REPL". Here the same root code runs on the real stack
(API, Postgres, Celery workers, real sandbox), and a session an older version stored with
`Infinity`/`NaN` in it runs again, without the bad values, saying which were dropped.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from tests.support.services import wait_for

ATTACK = """\
import collections, json
for target in (type(type(0)), type(json)):
    try:
        collections.UserDict.register(target)
    except Exception as exc:
        print('refused:', exc)
try:
    original = json.JSONEncoder.encode
    def forged(self, o):
        if o == 'boom':
            return '1e999'
        return original(self, o)
    json.JSONEncoder.encode = forged
except Exception as exc:
    print('refused:', exc)
v = 'boom'
w = 1e999
kept = 41
FINAL('stored')
"""


def strict_json(data: bytes):
    """Parse as standard JSON: NaN, Infinity and -Infinity are errors."""

    def refuse(token: str):
        raise ValueError(f"not JSON: {token}")

    return json.loads(data, parse_constant=refuse)


def _finished(client, execution_id: str) -> dict:
    def done():
        record = client.get(f"/api/executions/{execution_id}").get_json()
        return record if record["status"] not in ("queued", "running") else None

    return wait_for(done, timeout=60, interval=0.1, what=f"execution {execution_id}")


def _root_node(client, execution_id: str) -> dict:
    nodes = client.get(f"/api/executions/{execution_id}/trace").get_json()["nodes"]
    return next(n for n in nodes if n["kind"] == "root")


def test_root_code_storing_1e999_leaves_the_session_valid_and_usable(stack_client):
    session = stack_client.post("/api/sessions", json={"name": "shared", "context": "some text"}).get_json()
    first = stack_client.post(
        "/api/execute", json={"user_query": "store", "session_id": session["id"], "root_code": ATTACK}
    ).get_json()
    record = _finished(stack_client, first["execution_id"])
    assert record["status"] == "succeeded" and record["final_answer"] == "stored", record
    assert "w" in _root_node(stack_client, first["execution_id"])["stderr"]  # named, not kept

    read = stack_client.get(f"/api/sessions/{session['id']}")
    assert read.status_code == 200
    assert strict_json(read.data)["variables"] == {"v": "boom", "kept": 41}

    second = stack_client.post(
        "/api/execute",
        json={"user_query": "use", "session_id": session["id"], "root_code": "FINAL(str(kept + 1) + v)"},
    ).get_json()
    record = _finished(stack_client, second["execution_id"])
    assert record["status"] == "succeeded" and record["final_answer"] == "42boom", record


def test_a_session_holding_infinity_from_an_older_version_still_runs(tmp_path):
    """SQLite (embedded mode) stores whatever JSON text it is given: an older version's Infinity."""
    from rlm_api.cli.local_app import open_app
    from rlm_api.database import db
    from rlm_shared.contexts import store_context
    from rlm_shared.models import Session

    app = open_app(f"sqlite:///{tmp_path / 'old.db'}", quiet=True)
    with app.app_context():
        session = Session(name="old", context_id=store_context("some text").id, memory={}, variables={})
        db.session.add(session)
        db.session.commit()
        session_id = session.id
        db.session.execute(
            sa.text("UPDATE sessions SET variables = :raw WHERE id = :id"),
            {"raw": '{"ok": 1, "v": Infinity, "n": [NaN]}', "id": session_id},
        )
        db.session.commit()
    client = app.test_client()

    read = client.get(f"/api/sessions/{session_id}")
    assert strict_json(read.data)["variables"] == {"ok": 1}

    response = client.post(
        "/api/execute",
        json={"user_query": "q", "session_id": session_id, "root_code": "FINAL(str(ok + 1))", "wait": 60},
    )
    record = response.get_json()
    assert response.status_code == 200 and record["status"] == "succeeded", record
    assert record["final_answer"] == "2"
    stderr = _root_node(client, record["id"])["stderr"]
    assert "dropped from the session (stored values that are not JSON): v, n" in stderr

    with app.app_context():
        stored = db.session.execute(
            sa.text("SELECT variables FROM sessions WHERE id = :id"), {"id": session_id}
        )
        assert strict_json(stored.scalar_one().encode()) == {"ok": 1}
