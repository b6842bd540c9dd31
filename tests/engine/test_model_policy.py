"""MODEL_ALLOWLIST: the one decision every entry point asks before a model string reaches litellm."""

from __future__ import annotations

import pytest

from rlm_shared.config import Settings
from rlm_worker.engine.model_policy import ModelNotAllowed, ModelPolicy, ProviderNotConfigured


def test_the_default_allows_the_configured_models_local_and_the_providers_with_a_key():
    env = {"OPENAI_API_KEY": "k"}
    policy = ModelPolicy.from_setting(None, "openai/gpt-4o", "anthropic/claude-3-5-haiku-latest", None, env)
    assert policy.patterns == ("openai/gpt-4o", "anthropic/claude-3-5-haiku-latest", "local/*", "openai/*")
    for model in ("openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest", "local/smollm2"):
        assert policy.allows(model)
    for model in ("anthropic/claude-3-opus", "deepinfra/x", "gpt-4o", "ollama/llama3", "huggingface/a/b"):
        assert not policy.allows(model)


@pytest.mark.parametrize(
    ("env", "api_base", "allowed"),
    [
        ({}, None, ()),
        ({}, "http://127.0.0.1:8080/v1", ("openai/*",)),
        ({"ANTHROPIC_API_KEY": "k"}, None, ("anthropic/*",)),
        ({"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}, None, ("openai/*", "anthropic/*")),
    ],
)
def test_a_provider_is_on_the_default_list_once_its_key_or_base_is_set(env, api_base, allowed):
    policy = ModelPolicy.from_setting(None, "local/smollm2", None, api_base, env)
    assert policy.patterns == ("local/smollm2", "local/*", *allowed)


def test_without_its_key_an_openai_model_is_refused_with_the_key_to_set():
    policy = ModelPolicy.from_setting(None, "local/smollm2", None, None, {})
    with pytest.raises(ProviderNotConfigured) as error:
        policy.check("openai/gpt-4o-mini")
    assert str(error.value) == (
        "no API key for openai/gpt-4o-mini: set OPENAI_API_KEY, or LLM_API_BASE for a local server"
    )
    with pytest.raises(ProviderNotConfigured, match="set ANTHROPIC_API_KEY"):
        policy.check("anthropic/claude-3-5-haiku-latest")


def test_the_operators_list_replaces_the_default_and_is_named_in_refusals():
    policy = ModelPolicy.from_setting(
        " openai/gpt-4o* , local/* ", "openai/gpt-4o", None, None, {"OPENAI_API_KEY": "k"}
    )
    assert policy.patterns == ("openai/gpt-4o*", "local/*") and policy.explicit
    assert policy.allows("openai/gpt-4o-mini") and not policy.allows("openai/o1")
    with pytest.raises(ModelNotAllowed) as error:
        policy.check("deepinfra/x")
    assert str(error.value) == (
        "the model 'deepinfra/x' is not allowed by MODEL_ALLOWLIST=openai/gpt-4o*, local/*; "
        "ask the operator to add it to MODEL_ALLOWLIST"
    )
    assert not isinstance(error.value, ProviderNotConfigured)


def test_settings_build_the_policy_from_the_environment(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("MODEL_ALLOWLIST", "openai/*,perplexity/sonar")
    assert Settings().model_policy().patterns == ("openai/*", "perplexity/sonar")
    monkeypatch.delenv("MODEL_ALLOWLIST")
    monkeypatch.setenv("DEFAULT_MODEL", "openai/gpt-4o")
    monkeypatch.setenv("LLM_API_BASE", "http://127.0.0.1:1/v1")
    assert Settings().model_policy().patterns == ("openai/gpt-4o", "local/*", "openai/*")
