"""Custom tools that misbehave, registered by the tool tests next to `samples.tools` (RLM_TOOLS)."""

from __future__ import annotations

import threading


def hang(seconds: float = 3600.0) -> str:
    """Wait `seconds` and answer "woke"; the tests use it to stand for a tool that never answers."""
    threading.Event().wait(seconds)
    return "woke"


def explode(message: str) -> str:
    """Raise ValueError(message): a tool whose own code fails."""
    raise ValueError(message)


def opaque() -> object:
    """Return an object that is not JSON data."""
    return object()
