"""The offline default: with no provider key and no LLM_API_BASE, embedded mode still gets a real
run — the local model reads the chunks and a built-in strategy plays the root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rlm_shared.strategies import DEFAULT_STRATEGY, LOCAL_CHUNK_SIZE
from rlm_worker.engine import local_model

NOTICE = (
    "rlm: no model provider is configured (no API key for {model}, no LLM_API_BASE), so the local "
    "model {local} reads the chunks and {root} plays the root (no root "
    "model writes code). For a real model set OPENAI_API_KEY (or another provider's key) and "
    "DEFAULT_MODEL, or LLM_API_BASE for an OpenAI-compatible server."
)


@dataclass(frozen=True)
class OfflinePlan:
    sub_model: str
    strategy: str
    chunk_size: int
    notice: str


def provider_configured(model: str, api_base: str | None) -> bool:
    """Whether `model` can be reached: LLM_API_BASE is set, or litellm finds the provider's key
    in the environment."""
    if local_model.is_local(model) or api_base:
        return True
    # The two providers the defaults name, answered without importing litellm (seconds of
    # start-up on a small machine, for `rlm run` that then runs offline and never needs it).
    provider = model.split("/", 1)[0] if "/" in model else None
    if provider == "openai" or (provider is None and model.startswith(("gpt-", "o1", "o3", "o4"))):
        return bool(os.environ.get("OPENAI_API_KEY"))
    if provider == "anthropic":
        return bool(os.environ.get("ANTHROPIC_API_KEY"))
    from rlm_worker.engine.llm import _lib

    try:
        return bool(_lib().validate_environment(model=model)["keys_in_environment"])
    except Exception:  # a model litellm cannot route has no key to find
        return False


def offline_plan(default_model: str, api_base: str | None) -> OfflinePlan | None:
    """The plan to use when `default_model` cannot be reached and the local model can; else None.

    Call it with the settings' DEFAULT_MODEL and LLM_API_BASE, only when the user chose no model.
    """
    if provider_configured(default_model, api_base) or not local_model.available():
        return None
    return OfflinePlan(
        sub_model=local_model.DEFAULT_LOCAL_MODEL,
        strategy=DEFAULT_STRATEGY,
        chunk_size=LOCAL_CHUNK_SIZE,
        notice=NOTICE.format(
            model=default_model,
            local=local_model.DEFAULT_LOCAL_MODEL,
            root=f"the built-in `{DEFAULT_STRATEGY}` strategy",
        ),
    )
