"""Models at submission (issue #17 part 1, #15): off MODEL_ALLOWLIST or without a key -> 422 naming
the model and the setting, before anything is stored or enqueued."""

from __future__ import annotations

import pytest

from tests.api.conftest import make_app, queued_messages

#: Providers litellm would have sent OPENAI_API_KEY to, and servers on fixed local ports.
REFUSED = ["deepinfra/x", "perplexity/sonar", "ollama/llama3", "lemonade/a/b", "huggingface/org/repo"]


def post(client, **body):
    return client.post("/api/execute", json={"user_query": "q", "context": "text", **body})


@pytest.mark.parametrize("field", ["model", "sub_model"])
@pytest.mark.parametrize("model", REFUSED)
def test_a_model_off_the_default_allow_list_is_422_naming_it_and_the_setting(client, broker, field, model):
    response = post(client, **{field: model})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "model_not_allowed"
    assert repr(model) in error["message"] and "MODEL_ALLOWLIST" in error["message"]
    assert error["details"] == [{"field": field, "message": error["message"]}]
    assert queued_messages(broker) == 0
    assert client.get("/api/executions").get_json()["items"] == []


def test_the_default_allow_list_names_what_it_allows(client):
    message = post(client, model="deepinfra/x").get_json()["error"]["message"]
    assert "openai/scripted-root" in message and "local/*" in message and "openai/*" in message


def test_the_operators_allow_list_replaces_the_default(api_db_url, broker, clean):
    app = make_app(api_db_url, model_allowlist="openai/scripted-*, local/*")
    client = app.test_client()
    assert post(client, model="openai/scripted-root", sub_model="local/smollm2").status_code == 202
    refused = post(client, model="openai/gpt-4o")
    assert refused.status_code == 422
    assert "MODEL_ALLOWLIST=openai/scripted-*, local/*" in refused.get_json()["error"]["message"]


def test_a_missing_key_is_reported_as_such_at_submission(api_db_url, broker, clean, monkeypatch):
    """No LLM_API_BASE and no OPENAI_API_KEY: a model the request names cannot be called, and the
    submission says which variable to set (issue #15) instead of failing after retries. (With no
    model named, the offline plan runs instead: tests/api/test_root_programs.py.)"""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    app = make_app(api_db_url, llm_api_base=None, default_model="openai/gpt-4o-mini")
    response = post(app.test_client(), model="openai/gpt-4o-mini")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "missing_api_key"
    assert error["message"] == (
        "no API key for openai/gpt-4o-mini: set OPENAI_API_KEY, or LLM_API_BASE for a local server"
    )
    assert queued_messages(broker) == 0


def test_an_allowed_provider_without_its_key_is_reported_too(api_db_url, broker, clean, monkeypatch):
    monkeypatch.delenv("DEEPINFRA_API_KEY", raising=False)
    app = make_app(api_db_url, model_allowlist="*")
    response = post(app.test_client(), sub_model="deepinfra/x")
    assert response.status_code == 422
    assert response.get_json()["error"]["message"] == "no API key for deepinfra/x: set DEEPINFRA_API_KEY"


def test_the_bundled_local_model_is_no_root_and_unknown_local_names_are_refused(client, broker, monkeypatch):
    monkeypatch.delenv("LOCAL_MODEL_PATH", raising=False)
    root = post(client, model="local/smollm2")
    assert root.status_code == 422
    assert root.get_json()["error"]["code"] == "model_too_small"
    assert "--strategy" in root.get_json()["error"]["message"]
    unknown = post(client, sub_model="local/nosuch")
    assert unknown.status_code == 422 and unknown.get_json()["error"]["code"] == "unknown_model"
    assert "'local/nosuch'" in unknown.get_json()["error"]["message"]
    assert post(client, sub_model="local/smollm2").status_code == 202
    assert queued_messages(broker) == 1
