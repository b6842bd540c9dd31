"""Contexts are stored once per owner and distinct content; messages carry only ids.

The dedupe key (the `sha256` column) covers the owner (the API token's hash) as well as the
content, so a token uploading another token's exact text gets a context of its own: a context id
never tells one token what another has uploaded, and never leads to another token's row. Without
tokens (owner None) the key is the content's alone, as before, so existing rows still match.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa

from rlm_shared.database import database
from rlm_shared.models import Context


def encode_context(value: Any) -> tuple[str, str]:
    """(kind, text): a str is kept as is, a list or dict as JSON."""
    if isinstance(value, str):
        return "str", value
    if isinstance(value, list | dict):
        return ("list" if isinstance(value, list) else "dict"), json.dumps(value, ensure_ascii=False)
    raise TypeError("context must be a string, a list or an object")


def decode_context(kind: str, content: str) -> Any:
    return content if kind == "str" else json.loads(content)


def context_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    return len(encode_context(value)[1])


def dedupe_key(kind: str, text: str, owner: str | None) -> str:
    """sha256 of the owner (if any), the kind and the text; the two forms never share a prefix."""
    scope = b"" if owner is None else b"owner\0" + owner.encode() + b"\0"
    return hashlib.sha256(scope + f"{kind}\0".encode() + text.encode("utf-8", "surrogatepass")).hexdigest()


def store_context(value: Any, owner: str | None = None) -> Context:
    """Insert the context unless this owner already stored an identical one; return the row either way."""
    kind, text = encode_context(value)
    digest = dedupe_key(kind, text, owner)
    existing = database.session.scalar(sa.select(Context).where(Context.sha256 == digest))
    if existing is not None:
        return existing
    row = Context(sha256=digest, kind=kind, size_chars=len(text), content=text)
    database.session.add(row)
    try:
        database.session.flush()
    except sa.exc.IntegrityError:  # a concurrent request stored it first
        database.session.rollback()
        row = database.session.scalar(sa.select(Context).where(Context.sha256 == digest))
        assert row is not None
    return row


#: From this size on, the connection that read a context is closed rather than pooled: while it
#: lives, it keeps about two copies of the largest row it has read (libpq's grown buffers).
LARGE_CONTEXT_CHARS = 1_000_000


def load_context(context_id: str) -> Any:
    """The context's value, read with a Core select of two columns on a connection of its own:
    no ORM object keeps the text alive, and no pooled connection keeps a copy in its buffers."""
    query = sa.select(Context.kind, Context.content).where(Context.id == context_id)
    with database.engine.connect() as conn:
        row = conn.execute(query).one_or_none()
        if row is None:
            raise LookupError(f"context {context_id} not found")
        kind, content = row
        del row
        if len(content) >= LARGE_CONTEXT_CHARS and conn.dialect.name == "postgresql":
            conn.invalidate()
    return decode_context(kind, content)
