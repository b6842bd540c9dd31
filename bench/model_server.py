"""The benchmarks' model: the tests' scripted OpenAI-compatible server, answering the bench programs.

Root turns (requests with a system message) get the program named in the query
(`bench.programs`); sub-calls get "1" (or the next number of a chain). It also records when each
request arrived (`GET /bench/calls`) so a benchmark can time "submitted → first model call", and
`POST /bench/reset` (optionally `{"latency": s}`) clears the counters between runs. For runs across
hosts (`tests/support/hosts.py`) it also counts, per sub-call prompt (its sha256), how many times
each client address asked it (`GET /bench/prompts`), and the calls in flight per client address
(in `GET /bench/calls`), so a test can tell which host served what and that nothing was asked twice.
Run: `python -m bench.model_server --port 8801 --latency 0.2 [--host 10.233.0.3]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
import time
from collections import Counter
from typing import Any

from bench import programs
from tests.support import scripted_model


def bench_responder(request: dict[str, Any]) -> str:
    messages = request.get("messages", [])
    if any(m.get("role") == "system" for m in messages):
        if scripted_model.turn_index(request) > 0:
            return programs.GIVE_UP
        return programs.root_reply("\n".join(str(m.get("content", "")) for m in messages))
    return programs.sub_reply(scripted_model.user_text(request))


class BenchModelServer(scripted_model.ScriptedModelServer):
    def __init__(self, latency: float = 0.2, port: int = 0, host: str = "127.0.0.1") -> None:
        super().__init__(responder=bench_responder, latency=latency, port=port, host=host)
        self.RequestHandlerClass = _BenchHandler
        self._arrivals_lock = threading.Lock()
        self.arrivals: list[tuple[float, bool]] = []
        self.asked: dict[str, Counter[str]] = {}  # sub-call prompt digest -> client address -> times
        self.in_flight_by_client: Counter[str] = Counter()

    def note_arrival(self, at: float, root: bool) -> None:
        with self._arrivals_lock:
            self.arrivals.append((at, root))

    def note_sub_call(self, client: str, prompt: str, delta: int) -> None:
        """`delta` 1 when a sub-call arrives, -1 when it was answered (then it counts as asked)."""
        with self._arrivals_lock:
            self.in_flight_by_client[client] += delta
            if delta < 0:
                digest = hashlib.sha256(prompt.encode()).hexdigest()
                self.asked.setdefault(digest, Counter())[client] += 1

    def clear(self) -> None:
        self.reset()
        with self._arrivals_lock:
            self.arrivals.clear()
            self.asked.clear()
            self.in_flight_by_client.clear()


class _BenchHandler(scripted_model._Handler):
    server: BenchModelServer  # type: ignore[assignment]

    def do_GET(self) -> None:
        if self.path == "/bench/calls":
            with self.server._arrivals_lock:
                calls = [{"t": t, "root": root} for t, root in self.server.arrivals]
                by_client = dict(self.server.in_flight_by_client)
            self._send(200, {**self.server.stats(), "calls": calls, "in_flight_by_client": by_client})
        elif self.path == "/bench/prompts":
            with self.server._arrivals_lock:
                asked = {digest: dict(clients) for digest, clients in self.server.asked.items()}
            self._send(200, {"asked": asked})
        else:
            super().do_GET()

    def do_POST(self) -> None:
        if self.path == "/bench/reset":
            length = int(self.headers.get("Content-Length") or 0)
            options = json.loads(self.rfile.read(length) or b"{}")
            self.server.clear()
            if "latency" in options:
                self.server.latency = float(options["latency"])
            self._send(200, {"ok": True})
            return
        # Peek at the body only to tell a root turn from a sub-call, then serve it as usual.
        arrived = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        root = b'"role": "system"' in body or b'"role":"system"' in body
        self.server.note_arrival(arrived, root)
        client = self.client_address[0]
        prompt = None if root else _prompt_of(body)
        if prompt is not None:
            self.server.note_sub_call(client, prompt, 1)
        socket_file = self.rfile
        self.rfile = _Replay(body, socket_file)
        try:
            super().do_POST()
        finally:
            self.rfile = socket_file
            if prompt is not None:
                self.server.note_sub_call(client, prompt, -1)


def _prompt_of(body: bytes) -> str | None:
    try:
        return scripted_model.user_text(json.loads(body))
    except (ValueError, AttributeError):
        return None


class _Replay:
    """Serves an already-read body to the base handler, then the socket as before."""

    def __init__(self, body: bytes, rest: Any) -> None:
        self.body, self.rest = body, rest

    def read(self, n: int = -1) -> bytes:
        if self.body:
            data, self.body = (
                (self.body, b"") if n < 0 or n >= len(self.body) else (self.body[:n], self.body[n:])
            )
            return data
        return self.rest.read(n)

    def readline(self, *args: Any) -> bytes:
        return self.rest.readline(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rest, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8801)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds added to every call")
    args = parser.parse_args()
    server = BenchModelServer(latency=args.latency, port=args.port, host=args.host)
    print(f"bench model server on {server.url}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
