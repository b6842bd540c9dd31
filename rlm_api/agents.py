"""The calling agent's id: Letta names the agent that calls a tool in an `x-agent-id` header.

The MCP endpoint and `POST /api/execute` read the same header and record it on the execution
(`executions.agent_id`), so one agent's work can be found again on the dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping

from rlm_api.errors import APIError

AGENT_ID_HEADER = "X-Agent-Id"
#: The column's width; Letta's ids (`agent-<uuid>`) are 42 characters.
MAX_AGENT_ID_LENGTH = 200


class BadAgentId(ValueError):
    """The header's value cannot be stored as an agent id."""


def parse_agent_id(value: str | None) -> str | None:
    """The header's value, trimmed; None when absent or blank. Refuses what no agent id looks like."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > MAX_AGENT_ID_LENGTH:
        raise BadAgentId(f"{AGENT_ID_HEADER} may have at most {MAX_AGENT_ID_LENGTH} characters")
    if not value.isprintable():
        raise BadAgentId(f"{AGENT_ID_HEADER} must be printable text")
    return value


def agent_id_from_headers(headers: Mapping[str, str]) -> str | None:
    """For the API: a bad value is a 400 naming the header."""
    try:
        return parse_agent_id(headers.get(AGENT_ID_HEADER))
    except BadAgentId as exc:
        raise APIError(
            400, "invalid_header", str(exc), [{"field": AGENT_ID_HEADER, "message": str(exc)}]
        ) from None
