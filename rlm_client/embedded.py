"""The API in this process: the embedded app (SQLite, or `DATABASE_URL`) behind an httpx transport.

The client's code stays the same in both modes; only the transport differs. Executions run the
way `rlm run` and `rlm serve` run them (`rlm_api.embedded`: root threads in this process,
sub-calls on its leaf-call loop, no Celery, no Redis), and requests go through the very same
validation and errors as over the network. Model keys and endpoints come from this process's
environment (`OPENAI_API_KEY`, `LLM_API_BASE`, ...), as for `rlm run`. Flask, SQLAlchemy and the
engine are imported here, on first use, never by `import rlm_client`.
"""

from __future__ import annotations

from typing import Any

import httpx

#: The base URL of an in-process client; never resolved, the transport answers every request.
EMBEDDED_URL = "http://rlm.embedded"


def embedded_app(database_url: str | None = None) -> Any:
    """The embedded Flask app over `database_url` (default: as `rlm run`), migrated on first use.
    No bearer tokens: nothing outside this process can reach it."""
    from rlm_api.cli.local_app import embedded_database_url, open_app
    from rlm_shared.config import get_settings

    settings = get_settings().model_copy(update={"api_tokens": None})
    return open_app(database_url or embedded_database_url(), quiet=True, settings=settings)


def embedded_transport(database_url: str | None = None) -> httpx.WSGITransport:
    """A transport that hands each request to the embedded app, in this process."""
    return httpx.WSGITransport(app=embedded_app(database_url))
