"""Models a submission names, checked before anything is stored: allowed, and with a key to call them.

The API (`POST /api/execute`, sessions included), the dashboard form and `rlm run` all ask here,
so a model off MODEL_ALLOWLIST, or one whose provider has no key in this environment, is refused
at once (422 / a one-line CLI error) instead of failing later in a worker. The worker checks
again before every call (`LiteLLMClient`), since a worker may run with other settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import has_app_context

from rlm_api.launch import dispatch_mode
from rlm_worker.engine.local_model import TooSmallForRoot, UnknownLocalModel, check_local
from rlm_worker.engine.model_policy import ModelNotAllowed, ProviderNotConfigured
from rlm_worker.engine.provider_keys import MissingApiKey, UnknownModel, check_credentials


@dataclass(frozen=True)
class ModelRefused(Exception):
    """`field` (model or sub_model) names `model`, which cannot be used: `code` says why."""

    field: str
    model: str
    code: str
    message: str

    def __str__(self) -> str:
        return self.message


def check_models(settings: Any, *, root_is_a_model: bool = True, **models: str | None) -> None:
    """Raise ModelRefused for the first named model that is not allowed or has no key.

    Pass the models the execution will call, by field name (`model=..., sub_model=...`), the one
    the user chose first (its refusal is the one they see); None (no model is called, e.g. a
    built-in strategy plays the root) is skipped. `model` is the root: the bundled 135M local
    model is refused there, as is a `local/` name nothing here serves anywhere. With
    `root_is_a_model=False` a program plays the root (a strategy, `root_code`): the `model` given
    then only answers sub-calls, so a small local model is fine there.
    """
    policy = settings.model_policy()
    local_user = has_app_context() and dispatch_mode() == "embedded"
    for field, model in models.items():
        if model is None:
            continue
        try:
            check_local(model, as_root=field == "model" and root_is_a_model)
            policy.check(model, local_user)
            check_credentials(model, settings.llm_api_base)
        except UnknownLocalModel as exc:
            raise ModelRefused(field, model, "unknown_model", str(exc)) from None
        except TooSmallForRoot as exc:
            raise ModelRefused(field, model, "model_too_small", str(exc)) from None
        except ProviderNotConfigured as exc:
            raise ModelRefused(field, model, "missing_api_key", str(exc)) from None
        except ModelNotAllowed as exc:
            raise ModelRefused(field, model, "model_not_allowed", str(exc)) from None
        except MissingApiKey as exc:
            raise ModelRefused(field, model, "missing_api_key", str(exc)) from None
        except UnknownModel as exc:
            raise ModelRefused(field, model, "unknown_model", str(exc)) from None
