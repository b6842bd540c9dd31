"""`/mcp`: the MCP server over Streamable HTTP, on the API's port and tokens.

The SDK's transport is ASGI; the API is WSGI (gunicorn's threads, `rlm serve`'s werkzeug). So a
Flask view checks the bearer token (the same 401/429 as `/api`, and the same owner) and the
`x-agent-id` header, then hands the request to the SDK through a2wsgi's ASGI-to-WSGI adapter,
which runs ASGI apps on one event loop thread per process and streams their response back to the
WSGI server. Each request gets its own stateless session manager (the SDK's recommended mode for
servers behind several workers: no session lives in one process's memory), answering in SSE so
that progress notifications reach the client while a tool runs; the tools themselves run in
worker threads (`tools.py`), so one long question never blocks the loop.
"""

from __future__ import annotations

import io
import json
import os
import threading
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.wsgi import ClosingIterator

from rlm_api.agents import agent_id_from_headers
from rlm_api.auth import require_token
from rlm_api.streams import take_slot

bp = Blueprint("mcp", __name__)
_lock = threading.Lock()


def asgi_app(app: Flask) -> Any:
    """Imported at first use: workers and the rest of the API never load the SDK."""
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from rlm_api.mcp.tools import build_server

    # The low-level server is what the SDK's session manager drives (MCPServer keeps it private
    # and builds its own manager only inside a Starlette lifespan, which a2wsgi does not run).
    server = build_server(app)._lowlevel_server
    body_limit = int(app.config.get("MAX_CONTENT_LENGTH") or 4 * 1024 * 1024)

    async def handle(scope: Any, receive: Any, send: Any) -> None:
        manager = StreamableHTTPSessionManager(app=server, stateless=True, max_request_body_size=body_limit)
        async with manager.run():
            await manager.handle_request(scope, receive, send)

    return handle


def _wsgi_app() -> Any:
    """One adapter (and event loop thread) per process, made at first use: never across a fork."""
    app = current_app._get_current_object()
    with _lock:
        pid, adapter = app.extensions.get("rlm_mcp", (None, None))
        if pid != os.getpid():
            from a2wsgi import ASGIMiddleware

            adapter = ASGIMiddleware(asgi_app(app))
            app.extensions["rlm_mcp"] = (os.getpid(), adapter)
    return adapter


def _calls_a_tool() -> bool:
    """Whether this POST calls a tool (what may hold the thread for minutes). The body is read
    here and put back for the SDK, which reads it from the WSGI environ."""
    body = request.get_data(cache=True)
    request.environ["wsgi.input"] = io.BytesIO(body)
    try:
        message = json.loads(body)
    except ValueError:
        return False  # the SDK answers it with its own parse error
    messages = message if isinstance(message, list) else [message]
    return any(isinstance(m, dict) and m.get("method") == "tools/call" for m in messages)


@bp.route("/mcp", methods=["GET", "POST", "DELETE"])
def endpoint() -> Any:
    require_token()
    agent_id_from_headers(request.headers)  # a bad x-agent-id is a 400 here, as on /api/execute
    if request.method == "GET":
        # The spec's optional stream for messages the server starts: this server starts none, and
        # an idle stream would hold a web thread for as long as the client stays connected.
        return Response("this server offers no GET stream", 405, {"Allow": "POST, DELETE"})
    adapter = _wsgi_app()
    if request.method != "POST" or not _calls_a_tool():
        return adapter  # DELETE, initialize, listing tools: answered at once
    held = take_slot()  # a tool call may wait minutes for its answer: 429 past the stream limits

    def answer(environ: Any, start_response: Any) -> Any:
        """The SDK's response, giving the slot back when the WSGI server closes it."""
        try:
            return ClosingIterator(adapter(environ, start_response), [held.release])
        except BaseException:
            held.release()
            raise

    return answer  # Flask runs a WSGI callable as the response, streaming its body
