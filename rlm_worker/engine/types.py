"""Small typed records that flow through the engine."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class ModelReply:
    """What one model call returned, with its usage and price."""

    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True


@dataclass
class CellResult:
    """The outcome of running one code cell in the REPL."""

    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    final: str | None = None
    limit_hit: str | None = None


@dataclass
class TraceNode:
    """One node of an execution's trace tree (mirrors the `trace_nodes` table)."""

    execution_id: str
    kind: str
    path: str
    depth: int
    seq: int
    parent_id: str | None = None
    id: str = field(default_factory=new_id)
    model: str | None = None
    prompt: str | None = None
    response: str | None = None
    code: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    status: str = "running"
    error: str | None = None
    #: A sub-call sent to wait for a slot: when it was sent. `started_at` is then when it ran
    #: (None while it waits, and for ever if it was cancelled waiting).
    queued_at: datetime | None = None
    started_at: datetime | None = field(default_factory=utcnow)
    finished_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LLMCall:
    """A leaf sub-call to run somewhere (a thread, a Celery task); carries its trace coordinates."""

    execution_id: str
    node_id: str
    parent_id: str
    path: str
    depth: int
    seq: int
    model: str
    prompt: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LLMCall:
        return cls(**data)


@dataclass
class LLMCallOutcome:
    """The result of a leaf sub-call: text on success, error on failure, usage either way."""

    node_id: str
    text: str | None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    model: str | None = None
    answered: bool = True  # False: cancelled before the model answered (not a model call to count)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LLMCallOutcome:
        return cls(**data)

    def as_repl_value(self) -> str:
        """What the model's code sees: the text, or an error string it can test for."""
        if self.error is not None:
            return f"Error: {self.error}"
        return self.text or ""
