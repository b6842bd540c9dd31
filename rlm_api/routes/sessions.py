"""Sessions: a named context whose memory and REPL variables carry over between executions."""

from __future__ import annotations

import re

import sqlalchemy as sa

from rlm_api.auth import current_owner, owned
from rlm_api.database import db
from rlm_api.errors import not_found
from rlm_api.routes import bp
from rlm_api.routes.inputs import check_context_size, input_skipped, parse_body, parse_query
from rlm_api.routes.pages import page
from rlm_api.schemas import ID_PATTERN, SessionCreate, SessionQuery
from rlm_api.serializers import session_dict
from rlm_shared.contexts import store_context
from rlm_shared.models import Context, Session


def get_owned_session(session_id: str) -> Session:
    session = None
    if re.fullmatch(ID_PATTERN, session_id):
        session = db.session.scalar(owned(sa.select(Session).where(Session.id == session_id), Session))
    if session is None:
        raise not_found("session", session_id)
    return session


def _context_sizes(context_ids: list[str]) -> dict[str, int]:
    ids = [c for c in context_ids if c]
    if not ids:
        return {}
    rows = db.session.execute(sa.select(Context.id, Context.size_chars).where(Context.id.in_(ids)))
    return {context_id: size for context_id, size in rows}


@bp.post("/sessions")
def create_session():
    body = parse_body(SessionCreate)
    context_id = size = None
    if body.context is not None:
        check_context_size(body.context)
        ctx = store_context(body.context, owner=current_owner())
        context_id, size = ctx.id, ctx.size_chars
    session = Session(
        name=body.name, context_id=context_id, memory=body.memory, variables={}, owner=current_owner()
    )
    db.session.add(session)
    db.session.commit()
    created = session_dict(session, size)
    skipped = input_skipped()
    if skipped is not None:  # only an upload can skip files
        created["skipped"] = skipped
    return created, 201


@bp.get("/sessions")
def list_sessions():
    query = parse_query(SessionQuery)
    rows, next_cursor = page(owned(sa.select(Session), Session), Session, query.limit, query.cursor)
    sizes = _context_sizes([s.context_id for s in rows])
    return {"items": [session_dict(s, sizes.get(s.context_id)) for s in rows], "next_cursor": next_cursor}


@bp.get("/sessions/<session_id>")
def get_session(session_id: str):
    session = get_owned_session(session_id)
    return session_dict(session, _context_sizes([session.context_id]).get(session.context_id))


@bp.delete("/sessions/<session_id>")
def delete_session(session_id: str):
    """Its executions stay (their `session_id` becomes null); its context stays if others use it."""
    session = get_owned_session(session_id)
    db.session.delete(session)
    db.session.commit()
    return "", 204
