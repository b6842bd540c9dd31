"""Calls through the MCP SDK's own client, over Streamable HTTP or stdio, collecting progress."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

#: Answers wait for the execution; the scripted model answers within seconds.
CALL_SECONDS = 90


@dataclass
class ToolCall:
    is_error: bool
    text: str
    data: dict[str, Any] | None
    progress: list[tuple[float, float | None, str | None]] = field(default_factory=list)


def http_headers(token: str | None, agent_id: str | None = None) -> dict[str, str]:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if agent_id:
        headers["x-agent-id"] = agent_id
    return headers


async def _call(session: ClientSession, tool: str, arguments: dict[str, Any]) -> ToolCall:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    result = await session.call_tool(tool, arguments, progress_callback=on_progress)
    text = "".join(getattr(block, "text", "") for block in result.content)
    data = result.structured_content
    if data is None and not result.is_error:
        data = json.loads(text)
    return ToolCall(bool(result.is_error), text, data, seen)


async def _over_http(url: str, headers: dict[str, str], calls: list[tuple[str, dict[str, Any]]]) -> Any:
    timeout = httpx2.Timeout(30, read=CALL_SECONDS)
    async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                if not calls:
                    return [tool.name for tool in (await session.list_tools()).tools]
                return [await _call(session, tool, arguments) for tool, arguments in calls]


def call_http(
    url: str, token: str | None, tool: str, arguments: dict[str, Any], agent_id: str | None = None
) -> ToolCall:
    return anyio.run(_over_http, url, http_headers(token, agent_id), [(tool, arguments)])[0]


def tools_over_http(url: str, token: str | None) -> list[str]:
    return anyio.run(_over_http, url, http_headers(token), [])


async def _over_stdio(params: StdioServerParameters, calls: list[tuple[str, dict[str, Any]]]) -> Any:
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            names = [tool.name for tool in (await session.list_tools()).tools]
            return names, [await _call(session, tool, arguments) for tool, arguments in calls]


def calls_over_stdio(
    params: StdioServerParameters, calls: list[tuple[str, dict[str, Any]]]
) -> tuple[list[str], list[ToolCall]]:
    return anyio.run(_over_stdio, params, calls)


async def _server_info(params: StdioServerParameters) -> Any:
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            return (await session.initialize()).server_info


def server_info_over_stdio(params: StdioServerParameters) -> Any:
    """What the server says of itself in its answer to `initialize` (name, version)."""
    return anyio.run(_server_info, params)
