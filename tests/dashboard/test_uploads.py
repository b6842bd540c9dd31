"""The new-session form's upload: several files (or an archive) become a list of documents, skipped
files are shown on the session page, an unreadable file is named next to the field."""

from __future__ import annotations

from io import BytesIO

import sqlalchemy as sa

from rlm_api.database import db
from rlm_shared.contexts import decode_context
from rlm_shared.models import Context, Session
from tests.support.documents import docx_bytes, pdf_bytes, zip_bytes


def html(response) -> str:
    return response.get_data(as_text=True)


def test_several_files_make_a_session_over_a_list_of_documents(app, client):
    files = [
        (BytesIO(pdf_bytes(["Cover", "The lease ends in 2031."])), "lease.pdf"),
        (BytesIO(docx_bytes(["Payment within 45 days."])), "terms.docx"),
        (BytesIO(zip_bytes({"scans/photo.png": bytes(range(256)), "notes.txt": b"renew early"})), "more.zip"),
    ]
    response = client.post(
        "/sessions", data={"name": "Contracts", "context_file": files}, content_type="multipart/form-data"
    )
    assert response.status_code == 303, html(response)
    with app.app_context():
        session = db.session.scalar(sa.select(Session).where(Session.name == "Contracts"))
        row = db.session.get(Context, session.context_id)
        documents = decode_context(row.kind, row.content)
    assert [d["name"] for d in documents] == ["lease.pdf", "terms.docx", "more.zip/notes.txt"]
    assert "[page 2]\nThe lease ends in 2031." in documents[0]["text"]
    page = html(client.get(response.headers["Location"]))
    assert "Skipped more.zip/scans/photo.png: not text, and not a format this reader knows" in page
    again = html(client.get(response.headers["Location"]))
    assert "Skipped" not in again  # said once


def test_an_unreadable_upload_is_named_next_to_the_field(app, client):
    form = client.get("/sessions")
    assert 'name="context_file" multiple' in html(form)
    response = client.post(
        "/sessions",
        data={"name": "Broken", "context_file": (BytesIO(b"%PDF-1.4 cut short"), "scan.pdf")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "scan.pdf: not a readable PDF file" in html(response)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Session.id))) == 0
