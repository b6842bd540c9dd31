"""The opt-in model call cache (MODEL_CALL_CACHE): a reply kept by a hash of the model and the
exact messages, so re-running an eval (or any execution) with the same prompts costs nothing.

It wraps the process's model client (`services.model_client`), so root turns and sub-calls alike
are answered from the `model_call_cache` table when the same model was asked the same messages
before. A reply from the cache reports no tokens and no cost (nothing was spent); the row counts
its hits and the price they saved, which the eval report shows. Off by default: with sampling
temperature above 0 a provider would not have answered the same twice, and a cache returns the
first reply for ever.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import cast

import sqlalchemy as sa

from rlm_shared.database import database
from rlm_shared.models import ModelCallCache
from rlm_worker.engine.ports import AsyncModelClient, ModelClient
from rlm_worker.engine.types import ModelReply


def cache_key(model: str, messages: list[dict[str, str]]) -> str:
    body = json.dumps({"model": model, "messages": messages}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


def cached_reply(key: str) -> ModelReply | None:
    """The kept reply for `key`, its hit and saving counted; None on a miss."""
    table = ModelCallCache.__table__
    with database.engine.begin() as conn:
        row = conn.execute(
            sa.select(table.c.model, table.c.text, table.c.cost_usd).where(table.c.key == key)
        ).first()
        if row is None:
            return None
        conn.execute(
            sa.update(table)
            .where(table.c.key == key)
            .values(hits=table.c.hits + 1, saved_usd=table.c.saved_usd + row.cost_usd)
        )
    return ModelReply(text=row.text, model=row.model)


def keep(key: str, reply: ModelReply) -> None:
    """Keep a fresh reply (a concurrent identical call may have kept it first: then nothing)."""
    from rlm_worker.engine.types import utcnow

    table = ModelCallCache.__table__
    try:
        with database.engine.begin() as conn:
            conn.execute(
                sa.insert(table).values(
                    key=key,
                    model=reply.model,
                    text=reply.text,
                    input_tokens=reply.input_tokens,
                    output_tokens=reply.output_tokens,
                    cost_usd=reply.cost_usd,
                    hits=0,
                    saved_usd=0.0,
                    created_at=utcnow(),
                )
            )
    except sa.exc.IntegrityError:
        pass


class CachedModelClient:
    """A ModelClient answering repeated (model, messages) from the cache. Awaitable when `inner` is."""

    def __init__(self, inner: ModelClient) -> None:
        self.inner = inner

    def complete(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        key = cache_key(model, messages)
        reply = cached_reply(key)
        if reply is None:
            reply = self.inner.complete(model, messages)
            keep(key, reply)
        return reply

    async def acomplete(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        key = cache_key(model, messages)
        reply = await asyncio.to_thread(cached_reply, key)
        if reply is None:
            reply = await cast(AsyncModelClient, self.inner).acomplete(model, messages)
            await asyncio.to_thread(keep, key, reply)
        return reply
