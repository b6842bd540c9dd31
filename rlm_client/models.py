"""Typed mirrors of the API's JSON (see docs/api.md and /api/openapi.json).

Fields the server adds later are kept (`extra="allow"`) rather than refused, so an older client
keeps working against a newer server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

ExecutionStatus = Literal["queued", "running", "succeeded", "failed", "timed_out", "cancelled"]
FINISHED = frozenset({"succeeded", "failed", "timed_out", "cancelled"})


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class Usage(_Record):
    """Tokens, cost and calls over an execution's whole tree."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    llm_calls: int = 0
    sub_calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Execution(_Record):
    """One question over one context: `GET /api/executions/<id>`.

    `answer_found` is True when it found an answer, False when it ran but the context does not
    answer the question (`final_answer` is then "NONE"), None while running or when it failed.
    """

    id: str
    status: ExecutionStatus
    session_id: str | None = None
    context_id: str | None = None
    user_query: str | None = None
    root_model: str | None = None
    sub_model: str | None = None
    options: dict[str, Any] = {}
    final_answer: str | None = None
    answer_found: bool | None = None
    error: str | None = None
    guard_hit: str | None = None
    forced_final: bool | None = None
    offline: bool = False
    iterations: int = 0
    total_input_tokens: int = 0
    total_output_tokens: int = 0
    total_cost_usd: float = 0.0
    llm_calls: int = 0
    sub_calls: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    links: dict[str, str] = {}

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.total_input_tokens,
            output_tokens=self.total_output_tokens,
            cost_usd=self.total_cost_usd,
            llm_calls=self.llm_calls,
            sub_calls=self.sub_calls,
        )


class TraceNode(_Record):
    """One step of the tree: a root loop, an iteration, a code cell, a model call, a child agent.
    Nodes streamed over `/events` carry no prompt, response, code or output."""

    id: str
    parent_id: str | None = None
    depth: int = 0
    seq: int | None = None
    path: str | None = None
    kind: str
    model: str | None = None
    status: str | None = None
    prompt: str | None = None
    response: str | None = None
    code: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None


class Trace(_Record):
    execution_id: str
    nodes: list[TraceNode]


class Session(_Record):
    """A named context whose memory blocks and REPL variables carry over between executions."""

    id: str
    name: str
    context_id: str | None = None
    context_size: int | None = None
    memory: dict[str, str] = {}
    variables: dict[str, Any] = {}
    created_at: datetime | None = None
    updated_at: datetime | None = None
    skipped: list[dict[str, str]] | None = None  # files of an upload that were not read, and why


ItemT = TypeVar("ItemT", bound=BaseModel)


class Page(BaseModel, Generic[ItemT]):
    """A page of a list, newest first; pass `next_cursor` back as `cursor` for the next one."""

    items: list[ItemT]
    next_cursor: str | None = None


@dataclass(frozen=True)
class Event:
    """One server-sent event of `/events`: `status`, `node`, `end` or `timeout`, and its data."""

    event: str
    data: dict[str, Any]
    id: str | None = None

    @classmethod
    def parse(cls, event: str, data: str, event_id: str | None) -> Event:
        return cls(event=event, data=json.loads(data) if data else {}, id=event_id or None)

    @property
    def node(self) -> TraceNode | None:
        return TraceNode.model_validate(self.data) if self.event == "node" else None

    @property
    def execution(self) -> Execution | None:
        """The full record on `end` (None for an execution deleted while streaming)."""
        if self.event != "end" or self.data.get("status") == "deleted":
            return None
        return Execution.model_validate(self.data)
