"""Uploads over HTTP: documents of every kind, several files or one archive as a list of documents,
skipped files in the record, and the inputs the API refuses (with the file named)."""

from __future__ import annotations

import io
import json

import sqlalchemy as sa

from rlm_api.database import db
from rlm_shared.contexts import decode_context
from rlm_shared.models import Context, Execution
from tests.support.documents import (
    LATIN1_TEXT,
    docx_bytes,
    pdf_bytes,
    tar_bytes,
    xlsx_bytes,
    zip_bomb,
    zip_bytes,
)


def stored_context(app, context_id: str):
    with app.app_context():
        row = db.session.get(Context, context_id)
        return decode_context(row.kind, row.content)


def execute(client, files, **fields):
    data = {"user_query": "Which contracts end in 2031?", **fields, "context": files}
    return client.post("/api/execute", data=data, content_type="multipart/form-data")


def test_several_file_parts_make_a_list_of_documents(client, open_app):
    files = [
        (io.BytesIO(pdf_bytes(["Preamble", "The lease ends in 2031."])), "lease.pdf"),
        (io.BytesIO(docx_bytes(["Payment within 45 days."])), "terms.docx"),
        (io.BytesIO(xlsx_bytes({"Ports": [["Oslo", 3]]})), "figures.xlsx"),
        (io.BytesIO(LATIN1_TEXT.encode("latin-1")), "cafe.txt"),
    ]
    response = execute(client, files)
    assert response.status_code == 202, response.get_json()
    record = client.get(f"/api/executions/{response.get_json()['execution_id']}").get_json()
    assert record["options"]["skipped"] == []
    documents = stored_context(open_app, record["context_id"])
    assert [(d["name"], d["format"]) for d in documents] == [
        ("lease.pdf", "pdf"),
        ("terms.docx", "docx"),
        ("figures.xlsx", "xlsx"),
        ("cafe.txt", "text"),
    ]
    assert "[page 2]\nThe lease ends in 2031." in documents[0]["text"]
    assert documents[2]["text"] == "[sheet Ports]\nOslo,3" and documents[3]["text"] == LATIN1_TEXT


def test_one_archive_is_its_documents_and_its_skipped_files_are_recorded(client, open_app):
    bundle = zip_bytes({"a/lease.pdf": pdf_bytes(["ends 2031"]), "a/photo.png": bytes(range(256))})
    response = execute(client, (io.BytesIO(bundle), "bundle.zip"), options=json.dumps({"skipped": []}))
    assert response.status_code == 202, response.get_json()
    execution_id = response.get_json()["execution_id"]
    record = client.get(f"/api/executions/{execution_id}").get_json()
    assert record["options"]["skipped"] == [
        {"name": "a/photo.png", "reason": "not text, and not a format this reader knows"}
    ]
    assert [d["name"] for d in stored_context(open_app, record["context_id"])] == ["a/lease.pdf"]

    session = client.post(
        "/api/sessions",
        data={
            "name": "bundle",
            "context": (io.BytesIO(tar_bytes({"x.txt": b"x", "y.bin": bytes(256)})), "b.tgz"),
        },
        content_type="multipart/form-data",
    )
    assert session.status_code == 201, session.get_json()
    assert session.get_json()["skipped"] == [
        {"name": "y.bin", "reason": "not text, and not a format this reader knows"}
    ]
    assert "skipped" not in client.get(f"/api/sessions/{session.get_json()['id']}").get_json()


def test_a_single_pdf_upload_is_text_and_a_text_body_is_decoded(client, open_app):
    single = execute(client, (io.BytesIO(pdf_bytes(["Only page."])), "one.pdf"))
    assert single.status_code == 202, single.get_json()
    record = client.get(f"/api/executions/{single.get_json()['execution_id']}").get_json()
    assert stored_context(open_app, record["context_id"]) == "[page 1]\nOnly page."
    plain = client.post(
        "/api/execute?user_query=What%3F", data=LATIN1_TEXT.encode("latin-1"), content_type="text/plain"
    )
    assert plain.status_code == 202, plain.get_json()
    record = client.get(f"/api/executions/{plain.get_json()['execution_id']}").get_json()
    assert stored_context(open_app, record["context_id"]) == LATIN1_TEXT


def test_unreadable_uploads_and_archives_past_the_limits_are_refused_naming_the_file(client, open_app):
    broken = execute(client, [(io.BytesIO(b"alpha"), "a.txt"), (io.BytesIO(b"%PDF-1.4 cut"), "broken.pdf")])
    assert broken.status_code == 422
    error = broken.get_json()["error"]
    assert error["code"] == "unreadable_input" and error["message"].startswith(
        "broken.pdf: not a readable PDF"
    )

    evil = execute(client, (io.BytesIO(zip_bytes({"../../x.txt": b"x"})), "evil.zip"))
    assert evil.status_code == 422 and "path traversal" in evil.get_json()["error"]["message"]

    bomb = execute(client, (io.BytesIO(zip_bomb(256 << 20)), "bomb.zip"))
    assert bomb.status_code == 413
    assert bomb.get_json()["error"]["code"] == "input_too_large"
    assert "bomb.zip: expands to more than 200,000,000 bytes" in bomb.get_json()["error"]["message"]

    empty = execute(client, (io.BytesIO(b""), "empty.txt"))
    assert empty.status_code == 422 and empty.get_json()["error"]["message"] == "empty.txt: empty"
    with open_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Execution)) == 0


def test_an_empty_context_or_a_blank_question_is_refused(client):
    for body in (
        {"user_query": "What?", "context": ""},
        {"user_query": "What?", "context": "  \n"},
        {"user_query": "What?", "context": []},
        {"user_query": "   ", "context": "text"},
    ):
        response = client.post("/api/execute", json=body)
        assert response.status_code == 422, body
        field = "context" if "context" in response.get_json()["error"]["message"] else "user_query"
        assert response.get_json()["error"]["details"][0]["field"] == field
    blank = client.post("/api/execute", json={"user_query": "  ", "context": "t"}).get_json()["error"]
    assert blank["message"] == "invalid user_query: must not be blank"
    empty = client.post("/api/sessions", json={"name": "s", "context": ""}).get_json()["error"]
    assert empty["message"] == "invalid context: the context is empty"
