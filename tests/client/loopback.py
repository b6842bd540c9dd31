"""A tiny HTTP server on loopback that answers from a script: the outermost edge, for the client's
retries, where the real API cannot be made to answer 503 on demand."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: (status, headers, JSON body) per request, in order; the last one repeats.
Reply = tuple[int, dict[str, str], Any]

EXECUTION = {"id": "a" * 32, "status": "succeeded", "final_answer": "42", "answer_found": True}


def api_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class ScriptedAPI(ThreadingHTTPServer):
    def __init__(self, replies: list[Reply]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.replies = replies
        self.requests: list[tuple[float, str, str, bytes]] = []  # (time, method, path, body)
        self.url = f"http://127.0.0.1:{self.server_port}"

    def __enter__(self) -> ScriptedAPI:
        threading.Thread(target=self.serve_forever, name="scripted-api", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedAPI  # type: ignore[assignment]

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append((time.monotonic(), self.command, self.path, body))
        index = min(len(self.server.requests), len(self.server.replies)) - 1
        status, headers, payload = self.server.replies[index]
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer
