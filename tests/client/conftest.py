"""Fixtures of the client tests: the real API served over loopback HTTP, on the shared stack
(Postgres, real Celery workers, the scripted model server), open or behind bearer tokens."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

#: The scripted model's sub-calls find this code in the context.
CONTEXT = "filler text. " * 400 + "The secret code is QX-4417. " + "more filler. " * 400
QUESTION = "What is the secret code?"
#: A root program for a folder (a list of documents): the sub-call finds the code, FINAL names the files.
DOCUMENTS_ROOT = (
    "names = sorted(d['name'] for d in context)\n"
    "code = llm_query_batched(['Find it: ' + ' '.join(d['text'] for d in context)])[0]\n"
    "FINAL(code + ' in ' + ','.join(names))\n"
)


class LiveServer:
    """A Flask app on a loopback port, in a thread: what the client meets over the network."""

    def __init__(self, app) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="client-live-api", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


def token_app(stack_settings, token: str, **fields):
    from rlm_api import create_app

    settings = stack_settings.model_copy(update={"api_tokens": token, "secret_key": "client-tests", **fields})
    return create_app(settings=settings)


@pytest.fixture(scope="session")
def api_url(stack_app, celery_workers) -> Iterator[str]:
    """The open API (no tokens) with real workers behind it."""
    with LiveServer(stack_app) as server:
        yield server.url


@pytest.fixture(scope="session")
def token() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="session")
def token_url(stack_settings, celery_workers, token) -> Iterator[str]:
    """The API behind one bearer token, same database, broker and workers."""
    with LiveServer(token_app(stack_settings, token, api_rate_limit="1000/minute")) as server:
        yield server.url


@pytest.fixture()
def client(api_url, scripted):
    from rlm_client import RLMClient

    with RLMClient(api_url) as rlm:
        yield rlm
