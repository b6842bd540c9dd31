"""Which key goes with which model: passed to litellm explicitly, so litellm never picks one itself.

Why: when a provider's own key is unset, litellm falls back to `OPENAI_API_KEY` for about twenty
OpenAI-compatible providers and sends it to that provider's host. Here every call carries the key
meant for the host it goes to, or no call is made:

- `openai/...` with LLM_API_BASE: LLM_API_KEY (or a placeholder) to LLM_API_BASE;
- `openai/...` (and bare OpenAI names): OPENAI_API_KEY, to OpenAI's API (or the operator's
  OPENAI_API_BASE / OPENAI_BASE_URL);
- `anthropic/...`: ANTHROPIC_API_KEY;
- any other provider the operator allowed: that provider's own key (litellm's own name for it, or
  `<PROVIDER>_API_KEY`); a placeholder for servers that need none (ollama, llamafile, ...).

A missing key is a `MissingApiKey` raised before any request, so it is reported as such (never
retried, never sent to a server to find out).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

#: Providers served by local servers that take no key: they get a placeholder, never a real key.
NO_KEY_NEEDED = frozenset(
    {
        "ollama",
        "ollama_chat",
        "llamafile",
        "lemonade",
        "docker_model_runner",
        "hosted_vllm",
        "lm_studio",
        "xinference",
    }
)
PLACEHOLDER_KEY = "no-key"
_OPENAI = ("openai", "text-completion-openai")


class MissingApiKey(ValueError):
    """No key is configured for the provider of a model; the message says which variable to set."""


class UnknownModel(ValueError):
    """litellm cannot tell which provider serves the model string."""


def missing_key_message(model: str, variable: str) -> str:
    if variable == "OPENAI_API_KEY":
        return f"no API key for {model}: set OPENAI_API_KEY, or LLM_API_BASE for a local server"
    return f"no API key for {model}: set {variable}"


def litellm_credentials(
    model: str,
    api_base: str | None = None,
    api_key: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`api_key` (and `api_base`) for litellm; `api_base`/`api_key`: LLM_API_BASE/LLM_API_KEY."""
    env = os.environ if environ is None else environ
    if api_base and model.startswith("openai/"):
        return {"api_base": api_base, "api_key": api_key or "not-needed"}
    provider, own_key = _provider(model)
    if provider in _OPENAI:
        return {"api_key": _required(model, "OPENAI_API_KEY", env)}
    if provider == "anthropic":
        return {"api_key": _required(model, "ANTHROPIC_API_KEY", env)}
    variable = f"{provider.upper()}_API_KEY"
    key = own_key or env.get(variable)
    if key:
        return {"api_key": key}
    if provider in NO_KEY_NEEDED:
        return {"api_key": PLACEHOLDER_KEY}
    raise MissingApiKey(missing_key_message(model, variable))


def check_credentials(model: str, api_base: str | None, environ: Mapping[str, str] | None = None) -> None:
    """Raise MissingApiKey (or UnknownModel) when a call to `model` would have no key."""
    from rlm_worker.engine import local_model

    if not local_model.is_local(model):
        litellm_credentials(model, api_base, None, environ)


def _required(model: str, variable: str, env: Mapping[str, str]) -> str:
    key = env.get(variable)
    if not key:
        raise MissingApiKey(missing_key_message(model, variable))
    return key


def _provider(model: str) -> tuple[str, str | None]:
    """(provider, the provider's own key if litellm found one) as litellm will route `model`."""
    from rlm_worker.engine.llm import _lib

    try:
        _, provider, own_key, _ = _lib().get_llm_provider(model)
    except Exception:
        raise UnknownModel(f"unknown model {model!r}: litellm cannot tell which provider serves it") from None
    return str(provider), own_key or None
