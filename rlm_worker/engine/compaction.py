"""Compaction: when an agent's messages near its model's context window, older turns become a summary.

Why: a long run (many iterations, long cell outputs) would otherwise end with the provider refusing
a prompt larger than the model's window. As in the reference implementation, one model call
summarises the progress so far; the conversation then restarts from the system prompt, the first
user message and that summary, and the turns it replaces (with the summary) are kept whole in the
REPL variable `compaction_history`, so nothing is lost to the code. The loop records the call as a
`compaction` node of its own.

The window comes from litellm's model map (`max_input_tokens`), the local model's configured
context for `local/...`, or the operator's setting for a model neither knows.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from rlm_worker.engine import local_model
from rlm_worker.engine.llm import _lib as litellm_library

#: The reference's default share of the window at which compaction starts.
DEFAULT_THRESHOLD = 0.85
#: The reference's window for a model it does not know (tokens).
DEFAULT_WINDOW_TOKENS = 128_000
#: What a token is worth in characters when no tokenizer can count (a conservative estimate).
CHARS_PER_TOKEN = 4

SUMMARY_REQUEST = (
    "Your conversation is about to outgrow your context window, so it will be shortened. Summarise "
    "your progress so far: (1) which steps are done and which remain; (2) every concrete result you "
    "have (numbers, names, the variables that hold them), exactly; (3) what you will do next. Be "
    "brief (one to three paragraphs), keep every key result, and write no code."
)


def continue_after(compactions: int) -> str:
    """The user turn that follows the summary in the shortened conversation."""
    times = "once" if compactions == 1 else f"{compactions} times"
    return (
        f"Your conversation was compacted {times}: the summary above replaces the earlier turns, "
        "which are kept whole in the REPL variable `compaction_history` (a list of "
        '{"type": "turns", "messages": [...]} and {"type": "summary", "content": ...} entries). '
        "Your variables are all still there (SHOW_VARS() lists them). Do not redo finished work; "
        "go on from where the summary says you are."
    )


Messages = list[dict[str, str]]


def estimate_tokens(model: str, messages: Messages) -> int:
    """Tokens of `messages` for `model`: litellm's counter (tiktoken, offline), else characters / 4."""
    try:
        return int(litellm_library().token_counter(model=model, messages=messages))
    except Exception:  # an unknown tokenizer, a message shape it refuses: estimate instead
        return sum(len(str(m.get("content", ""))) for m in messages) // CHARS_PER_TOKEN


def known_window(model: str) -> int | None:
    """The model's input window in tokens, if litellm's map or the local model's settings say."""
    if local_model.is_local(model):
        return int(os.environ.get("LOCAL_MODEL_CONTEXT_TOKENS", "2048"))
    try:
        info = litellm_library().get_model_info(model)
    except Exception:  # ModelNotMappedError and friends: not in the map
        return None
    window = info.get("max_input_tokens") or info.get("max_tokens")
    return int(window) if window else None


@dataclass(frozen=True)
class CompactionPolicy:
    """When to compact. `window(model)` is the model's input window in tokens; `count(model,
    messages)` the tokens of a prompt; compaction starts at `threshold` of the window."""

    window: Callable[[str], int]
    count: Callable[[str, Messages], int] = estimate_tokens
    threshold: float = DEFAULT_THRESHOLD

    @classmethod
    def with_default_window(
        cls, default_window: int = DEFAULT_WINDOW_TOKENS, threshold: float = DEFAULT_THRESHOLD
    ) -> CompactionPolicy:
        """Known windows from litellm (or the local model); `default_window` for the rest."""
        return cls(window=lambda model: known_window(model) or default_window, threshold=threshold)

    def limit(self, model: str) -> int:
        """The prompt size (tokens) from which `model`'s conversation is compacted."""
        return int(self.window(model) * self.threshold)

    def due(self, model: str, messages: Messages) -> tuple[int, int] | None:
        """(tokens, limit) when `messages` reached the limit, else None. A token is at least one
        character, so a prompt with fewer characters than the limit is not counted at all."""
        limit = self.limit(model)
        if sum(len(str(m.get("content", ""))) for m in messages) < limit:
            return None
        tokens = self.count(model, messages)
        return (tokens, limit) if tokens >= limit else None
