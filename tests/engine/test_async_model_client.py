"""The litellm client's awaitable path: the same usage and cost as the blocking path, and which clients
take it. (Retries and failures of both paths: tests/engine/test_model_client.py.)"""

from __future__ import annotations

from rlm_worker.engine.llm import LiteLLMClient
from rlm_worker.engine.ports import supports_async
from rlm_worker.engine.subcall import run_on_loop
from tests.engine.conftest import ScriptedModel
from tests.engine.test_model_client import MESSAGES, client_for


def test_both_paths_report_the_same_usage_and_cost(scripted):
    scripted.responder = lambda request: "x" * 40
    prices = {"openai/scripted-sub": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}
    client = client_for(scripted, prices=prices)
    blocking = client.complete("openai/scripted-sub", MESSAGES)
    awaited = run_on_loop(client.acomplete("openai/scripted-sub", MESSAGES))
    assert awaited == blocking
    assert awaited.cost_known and awaited.cost_usd > 0


def test_only_clients_that_can_be_awaited_all_the_way_down_take_the_async_path(scripted):
    from rlm_worker.rate_limit import ModelRateLimiter, RateLimitedClient

    litellm_client = LiteLLMClient(api_base=scripted.url)
    no_limits = ModelRateLimiter("redis://127.0.0.1:1/0", {})  # no limits: never connects
    assert supports_async(litellm_client)
    assert supports_async(RateLimitedClient(litellm_client, no_limits))
    assert not supports_async(ScriptedModel(root=lambda m, model: ""))
    assert not supports_async(RateLimitedClient(ScriptedModel(root=lambda m, model: ""), no_limits))
