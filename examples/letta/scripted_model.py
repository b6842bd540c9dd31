"""A scripted OpenAI-compatible model for the Letta example: it plays Letta's agent and RLM Engine's
root and sub-calls, so the example runs with no provider key and no internet.

- A Letta agent's turn (the request carries `tools`): first a call of the MCP tool
  `ask_about_text` with `"request_heartbeat": true` (Letta then sends the tool's result back),
  then `send_message` with the answer the tool returned.
- RLM Engine's root turn (its system prompt names the Recursive Language Model): a program that
  asks one sub-call about the text and answers with it.
- A sub-call: the anchorage the text names.

Stdlib only. `python scripted_model.py --port 8765`.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TEXT = (
    "Log of the schooner Northern Tern. 9 May 1887: came to anchor in Table Bay, Cape Town, "
    "in eight fathoms. Took on water and salt beef. "
) * 40
QUESTION = "Where did the ship come to anchor on 9 May 1887?"
ROOT_PROGRAM = "```repl\nFINAL(llm_query('Where did the ship come to anchor? Reply with the place only.\\n' + context[:3000]))\n```"


def _tool_call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def reply(request: dict[str, Any]) -> dict[str, Any]:
    """The assistant message for one chat completion request."""
    messages = request.get("messages", [])
    if request.get("tools"):  # Letta's agent
        tool_results = [m for m in messages if m.get("role") == "tool"]
        answered = [m for m in tool_results if "answer" in str(m.get("content", ""))]
        if not answered:
            call = _tool_call(
                "ask_about_text",
                {"question": QUESTION, "text": TEXT, "request_heartbeat": True},
            )
            return {"role": "assistant", "content": None, "tool_calls": [call]}
        found = re.search(r'\\?"answer\\?":\s*\\?"([^"\\]+)', str(answered[-1].get("content", "")))
        answer = found.group(1) if found else "no answer came back"
        call = _tool_call(
            "send_message", {"message": f"RLM Engine says: {answer}", "request_heartbeat": False}
        )
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    system = next((str(m.get("content", "")) for m in messages if m.get("role") == "system"), "")
    if "Recursive Language Model" in system:
        return {"role": "assistant", "content": ROOT_PROGRAM}
    return {"role": "assistant", "content": "Table Bay, Cape Town"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body are two writes: without this, Nagle and delayed ACKs add ~40 ms a call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send({"object": "list", "data": [{"id": "scripted", "object": "model", "created": 0}]})
        else:
            self._send({"error": {"message": "not found"}}, 404)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path.rstrip("/").endswith("/embeddings"):
            inputs = body.get("input", [])
            inputs = inputs if isinstance(inputs, list) else [inputs]
            data = [
                {"object": "embedding", "index": i, "embedding": [0.01] * 1536} for i in range(len(inputs))
            ]
            self._send(
                {
                    "object": "list",
                    "data": data,
                    "model": body.get("model"),
                    "usage": {"prompt_tokens": 1, "total_tokens": 1},
                }
            )
            return
        message = reply(body)
        prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4 + 1
        self._send(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "scripted"),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                    }
                ],
                "usage": {"prompt_tokens": prompt, "completion_tokens": 12, "total_tokens": prompt + 12},
            }
        )

    def _send(self, payload: dict[str, Any], status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    port = parser.parse_args().port
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
