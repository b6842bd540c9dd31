"""The lean path records what litellm's path records: the same calls through both, compared field by field.

Both clients call the scripted OpenAI-compatible server over HTTP; each call's trace node (tokens,
cost, status, error message) and the requests the server saw (retries) must be the same.
"""

from __future__ import annotations

import re
import time

import pytest

from rlm_worker.engine.lean_client import LeanModelClient, lean_route
from rlm_worker.engine.llm import LiteLLMClient
from rlm_worker.engine.memory_sink import InMemoryTraceSink
from rlm_worker.engine.model_policy import ModelPolicy
from rlm_worker.engine.subcall import execute_llm_calls
from rlm_worker.engine.types import LLMCall
from tests.support.scripted_model import ScriptedError

PRICED = "openai/scripted-sub"
PRICES = {PRICED: {"input_cost_per_token": 1e-6, "output_cost_per_token": 3e-6}}
TIMEOUT = 0.5
#: What differs between two runs of the same timeout however it is made: the measured time.
_TIME_TAKEN = re.compile(r"time taken=[0-9.]+")


def responder():
    """Scripted by prompt: `ok`, `429 once <tag>` (a 429, then an answer), `400`, `401`, `slow`."""
    seen: set[str] = set()

    def respond(request):
        prompt = request["messages"][-1]["content"]
        if prompt.startswith("429 once") and prompt not in seen:
            seen.add(prompt)
            raise ScriptedError(429, "slow down")
        if prompt in ("400", "401", "500 credentials"):
            status = int(prompt[:3])
            message = (
                "Missing credentials. Please pass an `api_key`" if status == 500 else f"scripted {status}"
            )
            raise ScriptedError(status, message)
        if prompt == "slow":
            time.sleep(TIMEOUT * 2)
        return f"answer to {prompt[:20]}"

    return respond


def make(cls, server, **kwargs):
    return cls(
        api_base=server.url, api_key="scripted", timeout=TIMEOUT, max_retries=1, prices=PRICES, **kwargs
    )


def run(client, server, prompts: list[str], model: str) -> tuple[list[dict], int]:
    """The recorded trace nodes of one batch (one prompt: the blocking path; more: the event loop),
    and the requests the server answered (a timed-out request is counted once it ends)."""
    settled(server)
    server.reset(responder=responder())
    calls = [
        LLMCall(
            execution_id="e",
            node_id=f"n{i}",
            parent_id="p",
            path=f"0.{i}",
            depth=1,
            seq=i,
            model=model,
            prompt=p,
        )
        for i, p in enumerate(prompts)
    ]
    sink = InMemoryTraceSink()
    execute_llm_calls(calls, client, sink)
    nodes = []
    for node in sorted(sink.nodes.values(), key=lambda n: n.seq):
        fields = node.to_dict()
        for moment in ("id", "started_at", "finished_at"):
            fields.pop(moment)
        fields["error"] = fields["error"] and _TIME_TAKEN.sub("time taken=T", fields["error"])
        nodes.append(fields)
    settled(server)
    return nodes, server.stats()["total_calls"]


def settled(server, deadline: float = 10.0) -> None:
    """Wait until no request is in flight at the server."""
    until = time.monotonic() + deadline
    while server.stats()["in_flight"] and time.monotonic() < until:
        time.sleep(0.02)
    assert not server.stats()["in_flight"], "a request never ended"


PROMPTS = ["ok", "429 once a", "400", "401", "500 credentials", "slow"]


@pytest.mark.parametrize(
    "model", [PRICED, "openai/gpt-4o-mini"], ids=["configured price", "litellm's price map"]
)
@pytest.mark.parametrize("batch", [False, True], ids=["blocking", "event loop"])
def test_both_paths_record_the_same(scripted, model, batch):
    results = {}
    for cls in (LiteLLMClient, LeanModelClient):
        client = make(cls, scripted)
        if batch:
            results[cls] = run(client, scripted, PROMPTS, model)
        else:
            nodes, calls = zip(*(run(client, scripted, [p], model) for p in PROMPTS), strict=True)
            results[cls] = ([n for batch_nodes in nodes for n in batch_nodes], sum(calls))
    lean_nodes, lean_calls = results[LeanModelClient]
    litellm_nodes, litellm_calls = results[LiteLLMClient]
    assert lean_nodes == litellm_nodes
    assert lean_calls == litellm_calls == 1 + 2 + 1 + 1 + 1 + 2  # 429 and the timeout retried once
    by_prompt = {n["prompt"]: n for n in lean_nodes}
    assert by_prompt["ok"]["status"] == "succeeded" and by_prompt["ok"]["input_tokens"] > 0
    assert by_prompt["ok"]["cost_usd"] > 0
    assert by_prompt["429 once a"]["status"] == "succeeded"
    assert "RateLimitError" not in str(by_prompt["429 once a"]["error"])
    assert by_prompt["400"]["error"].startswith("BadRequestError: litellm.BadRequestError")
    assert by_prompt["401"]["error"].startswith("AuthenticationError: ")
    assert by_prompt["slow"]["error"].startswith("Timeout: litellm.Timeout")


def test_the_lean_path_is_taken_and_can_be_switched_off(scripted):
    lean = make(LeanModelClient, scripted)
    run(lean, scripted, ["ok"], PRICED)
    assert lean._pools._sync, "the call did not go through the lean client's pool"
    off = make(LeanModelClient, scripted, lean=False)
    nodes, _ = run(off, scripted, ["ok", "ok"], PRICED)
    assert not off._pools._sync and not off._pools._async
    assert [n["status"] for n in nodes] == ["succeeded", "succeeded"]


def test_the_allow_list_is_checked_before_every_lean_call(scripted):
    client = make(LeanModelClient, scripted, policy=ModelPolicy(("openai/other",), explicit=True))
    nodes, calls = run(client, scripted, ["ok"], PRICED)
    assert calls == 0
    assert nodes[0]["status"] == "failed" and PRICED in nodes[0]["error"]


def test_only_the_openai_route_is_lean():
    base = {"api_key": "k", "timeout": 5.0}
    assert lean_route({**base, "model": "anthropic/claude-3-5-haiku-latest"}) is None
    assert lean_route({**base, "model": "ollama/llama3"}) is None
    local = lean_route({**base, "model": "openai/smollm2", "api_base": "http://127.0.0.1:9/v1", "seed": 7,
                        "temperature": 0.0})  # fmt: skip
    assert local == {
        "name": "smollm2",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": "k",
        "organization": None,
        "timeout": 5.0,
        "body": {"temperature": 0.0, "seed": 7},
    }


@pytest.mark.parametrize("setting, lean", [(None, True), ("false", False)])
def test_the_setting_switches_the_worker_client(monkeypatch, setting, lean):
    from rlm_shared.config import get_settings
    from rlm_worker import services

    if setting is not None:
        monkeypatch.setenv("LEAN_MODEL_CLIENT", setting)
    else:
        monkeypatch.delenv("LEAN_MODEL_CLIENT", raising=False)
    get_settings.cache_clear()
    services.model_client.cache_clear()
    try:
        client = services.model_client()
        while not isinstance(client, LeanModelClient):
            client = client.inner
        assert client.lean is lean
    finally:
        get_settings.cache_clear()
        services.model_client.cache_clear()
