"""Issue #17 part 1: a model string chosen by a request or by the model's own code must never carry
OPENAI_API_KEY to another company's host, nor make the worker call fixed local ports or the model hub.

Attack: root code (standing for code a hostile document steers) calls `llm_query`,
`llm_query_batched` and `rlm_query` with each model string litellm routes elsewhere. Outcome that
must hold: every such call returns an error string naming the model, the execution goes on, and
the key (`SECRET`, this suite's OPENAI_API_KEY) reaches only the host configured for it — here a
loopback scripted server set as OPENAI_API_BASE. Every outgoing connection is recorded at the
socket (whatever HTTP library makes it) and refused unless it goes to that server; request headers
are recorded at the HTTP clients' transports (httpx, aiohttp), the outermost edge.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
import pytest

from rlm_worker.dispatchers import InProcessDispatcher
from rlm_worker.engine.llm import LiteLLMClient
from rlm_worker.engine.loop import Engine, ExecutionRequest
from rlm_worker.engine.memory_sink import InMemoryTraceSink
from rlm_worker.engine.model_policy import ModelPolicy
from rlm_worker.engine.options import ExecutionOptions
from rlm_worker.engine.ports import ModelError
from tests.security.conftest import SECRET, TEST_CONFIG
from tests.support.scripted_model import ScriptedModelServer

#: The strings of the issue: litellm sends OPENAI_API_KEY to their hosts, or calls fixed local
#: ports (ollama, llamafile, docker_model_runner, lemonade), or fetches from the model hub.
ATTACK_MODELS = [
    "deepinfra/x",
    "perplexity/x",
    "nvidia_nim/x",
    "cerebras/x",
    "sambanova/x",
    "github/x",
    "friendliai/x",
    "baseten/x",
    "nscale/x",
    "featherless_ai/x",
    "hyperbolic/x",
    "novita/x",
    "volcengine/x",
    "dashscope/x",
    "moonshot/x",
    "v0/x",
    "morph/x",
    "galadriel/x",
    "meta_llama/x",
    "codestral/x",
    "ollama/x",
    "llamafile/x",
    "docker_model_runner/x",
    "lemonade/some/path",
    "huggingface/org/repo",
]
CONFIGURED_MODEL = "openai/gpt-4o-mini"
#: Each attack model's own key variable, so a machine that happens to set one cannot skew the test.
OWN_KEYS = [
    f"{name.upper()}_API_KEY"
    for name in {m.split("/")[0] for m in ATTACK_MODELS} | {"perplexityai", "llama", "friendli"}
] + ["FRIENDLI_TOKEN", "HF_TOKEN", "HUGGINGFACE_API_KEY", "LLM_API_BASE", "OPENAI_BASE_URL"]

PROGRAM = """
import json
report = {}
for m in MODELS:
    report[m] = {
        'llm_query': llm_query('say hi', model=m),
        'llm_query_batched': llm_query_batched(['a', 'b'], model=m),
        'rlm_query': rlm_query('say hi', model=m),
    }
report['configured'] = llm_query('say hi', model=CONFIGURED)
FINAL(json.dumps(report))
"""


@dataclass
class Egress:
    """What left (or tried to leave) the process during the run."""

    allowed: tuple[str, int]
    connects: list[tuple[str, int]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def refused(self) -> list[tuple[str, int]]:
        return [target for target in self.connects if target != self.allowed]

    def carrying_the_key(self) -> list[str]:
        return [url for url, headers in self.requests if any(SECRET in v for v in headers.values())]


@pytest.fixture()
def model_host():
    server = ScriptedModelServer(responder=lambda request: "hi from the configured host").start()
    yield server
    server.stop()


@pytest.fixture()
def egress(monkeypatch, model_host):
    """Record every connection and request; refuse every connection but the configured host's."""
    host, port = model_host.server_address[:2]
    record = Egress(allowed=(host, port))
    real_connect = socket.socket.connect
    real_sync = httpx.HTTPTransport.handle_request
    real_async = httpx.AsyncHTTPTransport.handle_async_request
    real_aiohttp = aiohttp.ClientSession._request

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            target = (str(address[0]), int(address[1]))
            record.connects.append(target)
            if target != record.allowed:
                raise ConnectionRefusedError(f"test egress guard: {target} refused")
        return real_connect(sock, address)

    def sync_request(transport, request):
        record.requests.append((str(request.url), dict(request.headers)))
        return real_sync(transport, request)

    async def async_request(transport, request):
        record.requests.append((str(request.url), dict(request.headers)))
        return await real_async(transport, request)

    async def aiohttp_request(session, method, url, **kwargs):
        headers = {**dict(session.headers or {}), **dict(kwargs.get("headers") or {})}
        record.requests.append((str(url), {k: str(v) for k, v in headers.items()}))
        return await real_aiohttp(session, method, url, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", sync_request)
    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", async_request)
    monkeypatch.setattr(aiohttp.ClientSession, "_request", aiohttp_request)
    for name in OWN_KEYS:
        monkeypatch.delenv(name, raising=False)
    # The operator configured OPENAI_API_KEY (SECRET, from conftest) for this host only.
    monkeypatch.setenv("OPENAI_API_BASE", model_host.url)
    return record


def run_attack(policy: ModelPolicy) -> tuple[dict[str, Any], InMemoryTraceSink]:
    client = LiteLLMClient(timeout=5, max_retries=0, policy=policy)
    sink = InMemoryTraceSink()
    from rlm_worker.sandbox import make_sandbox_factory

    engine = Engine(
        client, InProcessDispatcher(client, sink), sink, make_sandbox_factory(TEST_CONFIG), policy
    )
    program = PROGRAM.replace("MODELS", json.dumps(ATTACK_MODELS)).replace(
        "CONFIGURED", json.dumps(CONFIGURED_MODEL)
    )
    result = engine.run(
        ExecutionRequest(
            execution_id="attack",
            user_query="q",
            context="a document that asks for other models",
            root_model="(root_code)",
            sub_model=CONFIGURED_MODEL,
            options=ExecutionOptions(max_recursion_depth=2, timeout_seconds=240),
            root_code=program,
        )
    )
    assert result.status == "succeeded", result.error  # the execution goes on
    return json.loads(result.final_answer), sink


def default_policy() -> ModelPolicy:
    """MODEL_ALLOWLIST unset: DEFAULT_MODEL, local/*, and openai/* since OPENAI_API_KEY is set."""
    return ModelPolicy.from_setting(None, CONFIGURED_MODEL, None, None)


def test_every_attack_model_is_refused_in_the_repl_and_the_key_reaches_only_its_host(egress, model_host):
    report, sink = run_attack(default_policy())
    for model in ATTACK_MODELS:
        answers = report[model]
        for value in [answers["llm_query"], answers["rlm_query"], *answers["llm_query_batched"]]:
            assert value.startswith("Error: the model"), (model, value)
            assert repr(model) in value and "MODEL_ALLOWLIST" in value
    assert report["configured"] == "hi from the configured host"
    # Nothing but the configured host was contacted; the key went there and nowhere else.
    assert egress.refused() == []
    assert egress.connects and set(egress.connects) == {egress.allowed}
    assert egress.carrying_the_key() and all(
        urlsplit(url).port == model_host.server_address[1] for url in egress.carrying_the_key()
    )
    assert model_host.stats()["total_calls"] == 1
    # The refusals are in the trace, and no child REPL was started for a refused model.
    refused = [n for n in sink.tree() if n.status == "failed" and "MODEL_ALLOWLIST" in (n.error or "")]
    assert {n.kind for n in refused} == {"llm_call", "child_rlm"}
    assert len(refused) == len(ATTACK_MODELS) * 4
    assert not [n for n in sink.tree() if n.kind == "iteration" and n.depth > 0]


def test_with_every_model_allowed_the_key_still_goes_only_to_its_host(egress, model_host):
    """MODEL_ALLOWLIST=*: the operator allowed everything, so only the explicit keys protect the
    secret: a provider without its own key is refused before any request, a local server gets a
    placeholder key, and nothing is sent to a host other than the key's."""
    report, _ = run_attack(ModelPolicy.from_setting("*", CONFIGURED_MODEL, None, None))
    assert report["configured"] == "hi from the configured host"
    # The key went only to its host; only loopback ports of keyless local servers were tried
    # (and refused here), never a remote host, and no other host got any Authorization header.
    assert egress.carrying_the_key() and all(
        urlsplit(url).port == model_host.server_address[1] for url in egress.carrying_the_key()
    ), egress.carrying_the_key()
    assert all(host in ("127.0.0.1", "::1") for host, _ in egress.refused()), egress.refused()
    hosts_with_auth = {
        urlsplit(url).hostname
        for url, headers in egress.requests
        if "authorization" in {k.lower() for k in headers}
    }
    assert hosts_with_auth <= {"127.0.0.1", "localhost"}
    for model in ATTACK_MODELS:
        value = report[model]["llm_query"]
        assert value.startswith("Error: "), (model, value)
    assert report["deepinfra/x"]["llm_query"] == "Error: no API key for deepinfra/x: set DEEPINFRA_API_KEY"
    assert report["huggingface/org/repo"]["llm_query"].startswith(
        "Error: no API key for huggingface/org/repo"
    )


def test_the_model_client_refuses_before_any_connection(egress):
    client = LiteLLMClient(timeout=5, max_retries=3, policy=default_policy())
    for model in ATTACK_MODELS:
        with pytest.raises(ModelError) as error:
            client.complete(model, [{"role": "user", "content": "hi"}])
        assert not error.value.transient
        assert repr(model) in str(error.value) and "MODEL_ALLOWLIST" in str(error.value)
    assert egress.connects == [] and egress.requests == []
