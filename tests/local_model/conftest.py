"""The real local model (SmolLM2-135M on llama.cpp), started once for the session in this process."""

from __future__ import annotations

import pytest

from rlm_worker.engine import local_model
from rlm_worker.engine.llm import LiteLLMClient

MODEL = local_model.DEFAULT_LOCAL_MODEL


@pytest.fixture(scope="session")
def local_client() -> LiteLLMClient:
    local_model.server()  # load once (~0.5 s); every test of the session reuses it
    return LiteLLMClient(max_retries=0)


@pytest.fixture(scope="session")
def local_engine(local_client):
    """The real engine as embedded mode builds it: real sandbox, local model, trace in memory."""
    from rlm_worker.dispatchers import InProcessDispatcher
    from rlm_worker.engine.loop import Engine
    from rlm_worker.engine.memory_sink import InMemoryTraceSink
    from rlm_worker.sandbox import SandboxConfig, make_sandbox_factory

    sink = InMemoryTraceSink()
    engine = Engine(
        local_client, InProcessDispatcher(local_client, sink), sink, make_sandbox_factory(SandboxConfig())
    )
    return engine, sink
