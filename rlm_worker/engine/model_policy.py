"""Which model strings may be used at all: the operator's allow-list, decided before litellm sees one.

Why: a model string picks the host that litellm calls and, for about twenty OpenAI-compatible
providers whose own key is unset, litellm sends `OPENAI_API_KEY` there (`deepinfra/x` ->
api.deepinfra.com); `ollama/`, `lemonade/`, ... call fixed loopback ports. The model string comes
from the request, the CLI and the model's own code (`llm_query(..., model=...)`), so none of them
may reach litellm unless the operator allowed it. Every entry point asks this one module: the API
and the CLI at submission, the REPL calls, and the model client itself before each call.

`MODEL_ALLOWLIST` holds comma-separated fnmatch patterns (`openai/*`, `anthropic/claude-*`, `*`).
Unset, the safe default is: DEFAULT_MODEL, SUB_MODEL, `local/*`, `openai/*` when OPENAI_API_KEY or
LLM_API_BASE is set, and `anthropic/*` when ANTHROPIC_API_KEY is set.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from rlm_worker.engine.local_model import PREFIX as LOCAL_PREFIX
from rlm_worker.engine.provider_keys import missing_key_message

SETTING = "MODEL_ALLOWLIST"


class ModelNotAllowed(ValueError):
    """The model string is not on the allow-list; the message names the model and the setting."""


class ProviderNotConfigured(ModelNotAllowed):
    """Off the default allow-list only because its provider's key is unset: the message says so."""


#: Providers the default allow-list lets in once their key is set: pattern -> the key's variable.
KEYED_PROVIDERS = {"openai/*": "OPENAI_API_KEY", "anthropic/*": "ANTHROPIC_API_KEY"}


@dataclass(frozen=True)
class ModelPolicy:
    """An allow-list of fnmatch patterns; `explicit` says whether the operator wrote it."""

    patterns: tuple[str, ...]
    explicit: bool = False

    @classmethod
    def from_setting(
        cls,
        allowlist: str | None,
        default_model: str,
        sub_model: str | None,
        api_base: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ModelPolicy:
        """The operator's `MODEL_ALLOWLIST`, or the safe default built from the other settings."""
        if allowlist is not None and allowlist.strip():
            patterns = tuple(p.strip() for p in allowlist.split(",") if p.strip())
            return cls(patterns, explicit=True)
        return cls(default_patterns(default_model, sub_model, api_base, environ), explicit=False)

    @classmethod
    def allow_all(cls) -> ModelPolicy:
        return cls(("*",), explicit=True)

    def allows(self, model: str) -> bool:
        return any(fnmatchcase(model, pattern) for pattern in self.patterns)

    def check(self, model: str, local_user: bool = False) -> str:
        """`model` if allowed, else ModelNotAllowed naming it and the setting (or the missing key)."""
        if not self.allows(model):
            refused = ProviderNotConfigured if self.missing_key(model) else ModelNotAllowed
            raise refused(self.refusal(model, local_user))
        return model

    def missing_key(self, model: str) -> str | None:
        """The variable that would put `model` on the default list (none for an operator's list)."""
        if self.explicit:
            return None
        return next((var for pattern, var in KEYED_PROVIDERS.items() if fnmatchcase(model, pattern)), None)

    def refusal(self, model: str, local_user: bool = False) -> str:
        """Why `model` is refused: not on the list, or (default list) its provider has no key.
        `local_user`: the person reading runs this process (embedded mode: `rlm run`, `rlm serve`),
        so the message says what to set rather than whom to ask."""
        variable = self.missing_key(model)
        if variable:
            return missing_key_message(model, variable)
        shown = ", ".join(self.patterns)
        where = f"{SETTING}={shown}" if self.explicit else f"{SETTING} (unset; the default allows {shown})"
        if local_user:
            wanted = ",".join(_unique([model, *self.patterns]))
            return (
                f"the model {model!r} is not allowed by {where}; to use it here, set "
                f"{SETTING}='{wanted}' (and its provider's API key) and run again"
            )
        return f"the model {model!r} is not allowed by {where}; ask the operator to add it to {SETTING}"


def default_patterns(
    default_model: str,
    sub_model: str | None,
    api_base: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """DEFAULT_MODEL, SUB_MODEL, the local model, and the providers whose key or base is set."""
    env = os.environ if environ is None else environ
    patterns: list[str] = [default_model, *([sub_model] if sub_model else []), f"{LOCAL_PREFIX}*"]
    if env.get("OPENAI_API_KEY") or api_base:
        patterns.append("openai/*")
    if env.get("ANTHROPIC_API_KEY"):
        patterns.append("anthropic/*")
    return tuple(_unique(patterns))


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)
