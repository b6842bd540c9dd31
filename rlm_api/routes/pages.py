"""Keyset pagination, newest first: stable under inserts, one indexed query per page.

The cursor is an opaque, URL-safe encoding of the last item's (created_at, id).
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from rlm_api.database import db
from rlm_api.errors import APIError
from rlm_api.schemas import ID_PATTERN


def encode_cursor(created_at: datetime, item_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), item_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, item_id = json.loads(raw)
        if not re.fullmatch(ID_PATTERN, item_id):
            raise ValueError("not an id")
        return datetime.fromisoformat(created), item_id
    except (ValueError, TypeError):
        raise APIError(
            422,
            "invalid_field",
            "invalid cursor: pass a next_cursor from a previous page",
            [{"field": "cursor"}],
        ) from None


def page(stmt: sa.Select, model: Any, limit: int, cursor: str | None) -> tuple[list[Any], str | None]:
    """One page of `stmt` (a select of `model`) and the cursor of the next, or None on the last."""
    if cursor:
        created, item_id = decode_cursor(cursor)
        stmt = stmt.where(
            sa.or_(model.created_at < created, sa.and_(model.created_at == created, model.id < item_id))
        )
    rows = list(db.session.scalars(stmt.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(last.created_at, last.id)
