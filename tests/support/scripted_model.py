"""A scripted OpenAI-compatible model server on loopback, so the real litellm HTTP path runs in tests.

`responder(request_json) -> str` decides each reply. The server reports realistic usage, can add
a fixed latency per call, and counts calls and peak concurrency so tests and benchmarks can prove
what reached "the model". Run standalone: `python -m tests.support.scripted_model --port 8765`.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], str]

FIND_SECRET_PROGRAM = """```repl
size = 100_000
chunks = [context[i:i + size] for i in range(0, len(context), size)]
print(len(chunks), "chunks")
answers = llm_query_batched([
    "Find the secret code in this text. Reply with only the code, or NONE if the text has none.\\n\\n" + c
    for c in chunks
])
found = sorted(set(a.strip() for a in answers if a.strip() != "NONE"))
FINAL(", ".join(found) if found else "NONE")
```"""

_SECRET = re.compile(r"secret code is ([A-Z]+-\d+)")


def default_responder(request: dict[str, Any]) -> str:
    """Root turns get the find-the-secret program; sub-calls extract the secret from their prompt."""
    messages = request.get("messages", [])
    system = next((m.get("content", "") for m in messages if m.get("role") == "system"), "")
    if "Recursive Language Model" in str(system):
        return FIND_SECRET_PROGRAM
    prompt = str(messages[-1].get("content", "")) if messages else ""
    match = _SECRET.search(prompt)
    return match.group(1) if match else "NONE"


def user_text(request: dict[str, Any]) -> str:
    messages = request.get("messages", [])
    return str(messages[-1].get("content", "")) if messages else ""


def turn_index(request: dict[str, Any]) -> int:
    """How many assistant turns came before this request (0 for the first call of a loop)."""
    return sum(1 for m in request.get("messages", []) if m.get("role") == "assistant")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ScriptedModelServer  # type: ignore[assignment]

    def setup(self) -> None:
        super().setup()
        # Headers and body are two writes; without this Nagle + delayed ACK add ~40 ms a call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/stats"):
            self._send(200, self.server.stats())
        elif self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send(400, {"error": {"message": "bad json"}})
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": "not found"}})
            return
        self.server.enter()
        try:
            if self.server.latency:
                time.sleep(self.server.latency)
            try:
                text = self.server.responder(request)
            except ScriptedError as exc:
                self._send(exc.status, {"error": {"message": exc.message, "type": "scripted"}})
                return
        finally:
            self.server.leave(request)
        prompt_chars = sum(len(str(m.get("content", ""))) for m in request.get("messages", []))
        prompt_tokens = max(1, prompt_chars // 4)
        completion_tokens = max(1, len(text) // 4)
        self._send(
            200,
            {
                "id": f"chatcmpl-{self.server.total_calls}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.get("model", "scripted"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ScriptedError(Exception):
    """Raise from a responder to answer with an HTTP error (e.g. 429, 500, 401)."""

    def __init__(self, status: int, message: str = "scripted failure") -> None:
        super().__init__(message)
        self.status, self.message = status, message


class ScriptedModelServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a fan-out opening 100+ connections at once
    # overflowed it, and each dropped SYN cost its call a 1 s retransmit (a real provider has no
    # such limit, so it would have been charged to the engine).
    request_queue_size = 1024

    def __init__(
        self,
        responder: Responder = default_responder,
        latency: float = 0.0,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__((host, port), _Handler)
        self.responder = responder
        self.latency = latency
        self._lock = threading.Lock()
        self.total_calls = 0
        self.in_flight = 0
        self.peak_concurrency = 0
        self.by_model: Counter[str] = Counter()
        self.prompts: list[str] = []
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}/v1"

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_concurrency = max(self.peak_concurrency, self.in_flight)

    def leave(self, request: dict[str, Any]) -> None:
        with self._lock:
            self.in_flight -= 1
            self.total_calls += 1
            self.by_model[str(request.get("model"))] += 1
            self.prompts.append(user_text(request)[:500])

    def reset(self, responder: Responder | None = None, latency: float | None = None) -> None:
        with self._lock:
            self.total_calls = 0
            self.peak_concurrency = 0
            self.by_model.clear()
            self.prompts.clear()
            if responder is not None:
                self.responder = responder
            if latency is not None:
                self.latency = latency

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total_calls": self.total_calls,
                "in_flight": self.in_flight,
                "peak_concurrency": self.peak_concurrency,
                "by_model": dict(self.by_model),
            }

    def start(self) -> ScriptedModelServer:
        self._thread = threading.Thread(target=self.serve_forever, name="scripted-model", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every call")
    args = parser.parse_args()
    server = ScriptedModelServer(latency=args.latency, port=args.port)
    print(f"scripted model server on {server.url}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
