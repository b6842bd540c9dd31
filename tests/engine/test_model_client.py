"""The litellm client against the scripted server over HTTP: retries, fast failures, usage and cost."""

from __future__ import annotations

import time

import pytest

from rlm_worker.engine.llm import _CALLBACK_LISTS, LiteLLMClient
from rlm_worker.engine.ports import ModelError
from rlm_worker.engine.subcall import run_on_loop
from tests.support.scripted_model import ScriptedError

MESSAGES = [{"role": "user", "content": "hello there"}]


def failing_first(times: int, status: int):
    state = {"n": 0}

    def responder(request):
        state["n"] += 1
        if state["n"] <= times:
            raise ScriptedError(status, f"scripted {status}")
        return "fine"

    return responder


def client_for(server, **kwargs) -> LiteLLMClient:
    return LiteLLMClient(api_base=server.url, api_key="scripted", timeout=10, **kwargs)


@pytest.fixture(params=["blocking", "awaited"])
def complete(request):
    """Both paths of the client (`complete`, and `acomplete` on the leaf calls' event loop) must
    retry, fail and price the same way."""
    if request.param == "blocking":
        return lambda client, model, messages: client.complete(model, messages)
    return lambda client, model, messages: run_on_loop(client.acomplete(model, messages))


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_errors_are_retried_with_backoff(scripted, complete, status):
    scripted.responder = failing_first(2, status)
    reply = complete(client_for(scripted, max_retries=3), "openai/scripted-sub", MESSAGES)
    assert reply.text == "fine"
    assert scripted.stats()["total_calls"] == 3


def test_transient_errors_give_up_after_the_retries(scripted, complete):
    scripted.responder = failing_first(10, 503)
    with pytest.raises(ModelError) as error:
        complete(client_for(scripted, max_retries=1), "openai/scripted-sub", MESSAGES)
    assert error.value.transient
    assert scripted.stats()["total_calls"] == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_permanent_errors_fail_fast_with_a_clear_message(scripted, complete, status):
    scripted.responder = failing_first(10, status)
    with pytest.raises(ModelError) as error:
        complete(client_for(scripted, max_retries=3), "openai/scripted-sub", MESSAGES)
    assert not error.value.transient
    assert f"scripted {status}" in str(error.value)
    assert scripted.stats()["total_calls"] == 1


def test_a_credentials_error_is_never_retried_even_as_a_500(scripted, complete):
    """litellm raises some missing-key errors as InternalServerError (issue #15 saw ~16 s of retries)."""
    scripted.responder = lambda request: (_ for _ in ()).throw(
        ScriptedError(500, "Missing credentials. Please pass an `api_key`")
    )
    with pytest.raises(ModelError) as error:
        complete(client_for(scripted, max_retries=3), "openai/scripted-sub", MESSAGES)
    assert not error.value.transient
    assert scripted.stats()["total_calls"] == 1


def test_a_missing_key_is_reported_before_any_request(scripted, complete, monkeypatch):
    """No LLM_API_BASE, no OPENAI_API_KEY: the message says what to set, and nothing is sent."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_BASE", scripted.url)  # were a request made, it would land here
    started = time.monotonic()
    with pytest.raises(ModelError) as error:
        complete(LiteLLMClient(timeout=10, max_retries=4), "openai/gpt-4o-mini", MESSAGES)
    assert str(error.value) == (
        "no API key for openai/gpt-4o-mini: set OPENAI_API_KEY, or LLM_API_BASE for a local server"
    )
    assert not error.value.transient
    assert time.monotonic() - started < 1
    assert scripted.stats()["total_calls"] == 0


def test_an_unknown_model_fails_at_once_without_a_request(scripted, complete):
    with pytest.raises(ModelError) as error:
        complete(client_for(scripted, max_retries=4), "nosuch-model-xyz", MESSAGES)
    assert "unknown model 'nosuch-model-xyz'" in str(error.value)
    assert not error.value.transient
    assert scripted.stats()["total_calls"] == 0


def test_the_key_of_each_route_is_passed_explicitly(scripted, monkeypatch):
    """LLM_API_BASE gets LLM_API_KEY; OpenAI gets OPENAI_API_KEY; never litellm's own fallback."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-anthropic")
    monkeypatch.setenv("DEEPINFRA_API_KEY", "sk-deepinfra")
    client = client_for(scripted)
    assert client._request_kwargs("openai/x")["api_key"] == "scripted"
    assert client._request_kwargs("openai/x")["api_base"] == scripted.url
    plain = LiteLLMClient()
    assert plain._request_kwargs("openai/x")["api_key"] == "sk-openai"
    assert plain._request_kwargs("gpt-4o-mini")["api_key"] == "sk-openai"
    assert plain._request_kwargs("anthropic/claude-3-5-haiku-latest")["api_key"] == "sk-anthropic"
    assert plain._request_kwargs("deepinfra/x")["api_key"] == "sk-deepinfra"
    assert plain._request_kwargs("ollama/x")["api_key"] == "no-key"


def test_usage_and_registered_prices_give_the_cost(scripted):
    scripted.responder = lambda request: "x" * 40
    prices = {"openai/scripted-sub": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}
    reply = client_for(scripted, prices=prices).complete("openai/scripted-sub", MESSAGES)
    assert reply.input_tokens > 0 and reply.output_tokens == 10
    assert reply.cost_usd == pytest.approx(reply.input_tokens * 1e-6 + 10 * 2e-6)
    assert reply.cost_known


def test_an_unpriced_model_costs_zero_and_says_so(scripted):
    reply = client_for(scripted).complete("openai/scripted-unpriced-model", MESSAGES)
    assert reply.cost_usd == 0.0 and not reply.cost_known


def test_configured_prices_are_known_to_litellm_too(scripted):
    """litellm prices every call itself; told our prices, it finds the model at once (and agrees)."""
    import litellm

    model = "openai/scripted-priced-for-litellm"
    prices = {model: {"input_cost_per_token": 3e-6, "output_cost_per_token": 5e-6}}
    assert model not in litellm.model_cost
    reply = client_for(scripted, prices=prices).complete(model, MESSAGES)
    assert litellm.model_cost[model]["input_cost_per_token"] == 3e-6
    assert litellm.cost_per_token(
        model=model, prompt_tokens=reply.input_tokens, completion_tokens=reply.output_tokens
    ) == pytest.approx((reply.input_tokens * 3e-6, reply.output_tokens * 5e-6))


# -- litellm's own success logging: skipped when nothing reads it, kept when a callback does -----
def _wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture()
def success_logs(monkeypatch) -> list[str]:
    """Every call litellm runs its success logging for (counted at the outermost edge: litellm itself)."""
    from litellm.litellm_core_utils.litellm_logging import Logging

    handled: list[str] = []

    def counting(name: str) -> None:
        original = getattr(Logging, name)

        def counted(self, *args, **kwargs):
            handled.append(self.model)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(Logging, name, counted)

    counting("success_handler")
    counting("async_success_handler")
    return handled


def _bare_call(server, model: str, awaited: bool) -> None:
    """One call straight to litellm, with its logging on: the control the client's calls are held to."""
    import litellm

    kwargs = {"model": model, "messages": MESSAGES, "api_base": server.url, "api_key": "scripted"}
    if awaited:
        run_on_loop(litellm.acompletion(**kwargs))
    else:
        litellm.completion(**kwargs)


def _through_client(server, awaited: bool, times: int) -> None:
    client = client_for(server)
    for _ in range(times):
        if awaited:
            run_on_loop(client.acomplete("openai/scripted-sub", MESSAGES))
        else:
            client.complete("openai/scripted-sub", MESSAGES)


def test_the_installed_litellm_has_the_switch_for_unread_logging():
    """Without it every call pays litellm's logging (~1 ms of CPU): an upgrade must not lose it silently."""
    from rlm_worker.engine.llm import logging_switch

    assert logging_switch() is not None


@pytest.mark.parametrize("awaited", [False, True], ids=["blocking", "awaited"])
def test_litellm_success_logging_is_skipped_when_no_callback_reads_it(scripted, success_logs, awaited):
    _through_client(scripted, awaited, times=3)
    _bare_call(scripted, "openai/control", awaited)  # logged in the background, after the three
    _wait_until(lambda: "control" in success_logs)
    assert success_logs.count("scripted-sub") == 0


@pytest.mark.parametrize("awaited", [False, True], ids=["blocking", "awaited"])
def test_a_registered_litellm_callback_still_sees_every_call(scripted, monkeypatch, awaited):
    import litellm
    from litellm.integrations.custom_logger import CustomLogger

    seen: list[str] = []

    class Recorder(CustomLogger):
        def log_success_event(self, kwargs, response_obj, start_time, end_time):
            seen.append(kwargs["model"])

        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            seen.append(kwargs["model"])

    for name in _CALLBACK_LISTS:  # litellm copies `callbacks` into the others: restore them all after
        monkeypatch.setattr(litellm, name, [])
    monkeypatch.setattr(litellm, "callbacks", [Recorder()])
    _through_client(scripted, awaited, times=2)
    _wait_until(lambda: len(seen) >= 2)
    assert set(seen) == {"scripted-sub"}


def test_registering_prices_leaves_litellm_nothing_to_warn_about():
    """litellm warns at every worker start about a model priced without cache prices."""
    import logging

    from rlm_worker.engine.llm import register_prices

    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())
    logger = logging.getLogger("LiteLLM")
    logger.addHandler(handler)
    try:
        register_prices({"openai/priced-here": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}})
    finally:
        logger.removeHandler(handler)
    assert warnings == []
