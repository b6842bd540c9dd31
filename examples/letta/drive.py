"""Drive the running Letta server: register RLM Engine's MCP server, make an agent with its
`ask_about_text` tool, send the agent a message, and check the answer and the recorded agent id.

Stdlib only. Reads LETTA_URL, RLM_URL, RLM_TOKEN and MODEL_URL from the environment (run.sh sets them).
Exits non-zero, saying why, when a check fails.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

LETTA, RLM, TOKEN, MODEL = (os.environ[k] for k in ("LETTA_URL", "RLM_URL", "RLM_TOKEN", "MODEL_URL"))


def call(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 120
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as exc:
        sys.exit(f"FAILED: {method} {url} -> {exc.code}: {exc.read().decode()[:2000]}")
    return json.loads(text) if text else None


def step(text: str) -> None:
    print(f"[letta example] {text}", flush=True)


def register_mcp_server() -> None:
    """Letta 0.11 (`/v1/tools/mcp/servers`). `type` must be `streamable_http`: without it Letta
    takes the URL for an SSE server and listing its tools hangs."""
    config = {
        "server_name": "rlm-engine",
        "type": "streamable_http",
        "server_url": f"{RLM}/mcp",
        "auth_header": "Authorization",
        "auth_token": f"Bearer {TOKEN}",
    }
    call("PUT", f"{LETTA}/v1/tools/mcp/servers", config)
    tools = call("GET", f"{LETTA}/v1/tools/mcp/servers/rlm-engine/tools")
    step(
        f"MCP server registered over Streamable HTTP; its tools: {', '.join(sorted(t['name'] for t in tools))}"
    )


def main() -> None:
    register_mcp_server()
    tool = call("POST", f"{LETTA}/v1/tools/mcp/servers/rlm-engine/ask_about_text")
    step(f"tool ask_about_text added to Letta as {tool['id']}")
    agent = call(
        "POST",
        f"{LETTA}/v1/agents/",  # the trailing slash: without it a 307 (urllib does not follow it for a POST)
        {
            "name": f"rlm-example-{int(time.time())}",
            "llm_config": {
                "model": "scripted",
                "model_endpoint_type": "openai",
                "model_endpoint": MODEL,
                "context_window": 32000,
            },
            "embedding_config": {
                "embedding_model": "scripted-embedding",
                "embedding_endpoint_type": "openai",
                "embedding_endpoint": MODEL,
                "embedding_dim": 1536,
            },
            "tool_ids": [tool["id"]],
        },
    )
    step(f"agent {agent['id']} created")
    sent = call(
        "POST",
        f"{LETTA}/v1/agents/{agent['id']}/messages",
        {"messages": [{"role": "user", "content": "Ask RLM Engine where the ship anchored on 9 May 1887."}]},
        timeout=300,
    )
    said = [m for m in sent["messages"] if m.get("message_type") == "assistant_message"]
    tool_returns = [m for m in sent["messages"] if m.get("message_type") == "tool_return_message"]
    if not said or "Table Bay" not in str(said[-1].get("content")):
        sys.exit(
            f"FAILED: the agent did not pass the answer on: {json.dumps(sent['messages'], indent=1)[:3000]}"
        )
    step(f"tool returned ({len(tool_returns)} return message(s)); the agent said: {said[-1]['content']}")

    headers = {"Authorization": f"Bearer {TOKEN}"}
    executions = call("GET", f"{RLM}/api/executions?agent_id={agent['id']}", headers=headers)["items"]
    if len(executions) != 1:
        sys.exit(f"FAILED: expected one execution recorded for agent {agent['id']}, found {len(executions)}")
    record = executions[0]
    if (
        record["status"] != "succeeded"
        or record["agent_id"] != agent["id"]
        or "Table Bay" not in record["final_answer"]
    ):
        sys.exit(f"FAILED: unexpected execution record: {json.dumps(record, indent=1)}")
    step(
        f"execution {record['id']}: {record['status']}, agent_id {record['agent_id']}, answer "
        f"{record['final_answer']!r}, {record['llm_calls']} model calls, {record['sub_calls']} sub-call(s)"
    )
    step("OK: the answer came back through Letta and the execution carries the Letta agent's id")


if __name__ == "__main__":
    main()
