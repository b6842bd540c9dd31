"""Per-process singletons of a worker: the model clients (the root's, the sub-calls') and the sandbox factory.

The model client queues `local/...` calls for the process's llama.cpp slots (`LocalModelQueue`).

litellm takes ~2 s to import, so one client serves every task of a process.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
from functools import lru_cache
from typing import TYPE_CHECKING

from rlm_shared.config import get_settings
from rlm_worker.engine.lean_client import LeanModelClient
from rlm_worker.engine.local_model import LocalModelQueue
from rlm_worker.engine.ports import ModelClient, SandboxFactory
from rlm_worker.engine.sandbox_slots import SlotPool
from rlm_worker.engine.tools import ToolBox
from rlm_worker.metered import MeteredModelClient

if TYPE_CHECKING:
    from rlm_worker.sandbox import SandboxConfig
    from rlm_worker.sandbox.isolation import IsolationPlan


@lru_cache(maxsize=1)
def model_client() -> ModelClient:
    s = get_settings()
    prices = json.loads(s.model_prices) if s.model_prices else None
    client = LeanModelClient(  # litellm for every provider; the openai SDK for OpenAI-compatible ones
        api_base=s.llm_api_base,
        api_key=s.llm_api_key,
        timeout=s.llm_timeout_seconds,
        max_retries=s.llm_max_retries,
        prices=prices,
        policy=s.model_policy(),
        lean=s.lean_model_client,
    )
    if s.model_rate_limits:
        from rlm_worker.rate_limit import RateLimitedClient, limiter_from_settings

        client = RateLimitedClient(client, limiter_from_settings())
    metered = MeteredModelClient(LocalModelQueue(client))
    if not s.model_call_cache:
        return metered
    from rlm_worker.call_cache import CachedModelClient

    return CachedModelClient(metered)  # outside the meter: a reply from the cache is no model call


@lru_cache(maxsize=1)
def subcall_client() -> ModelClient:
    """The model client of leaf sub-calls: the process's client, under the fleet-wide cap if set."""
    settings = get_settings()
    if not settings.subcall_concurrency_limit:
        return model_client()
    from rlm_worker.rate_limit import ConcurrencyLimitedClient, ConcurrencyLimiter, redis_url_from_settings

    # A slot outlives one call's timeout, so in practice only a dead worker's slots expire.
    slot_seconds = settings.llm_timeout_seconds + 30
    limiter = ConcurrencyLimiter(redis_url_from_settings(), settings.subcall_concurrency_limit, slot_seconds)
    return ConcurrencyLimitedClient(model_client(), limiter)


def sandbox_config() -> SandboxConfig:
    """The REPL limits and OS layers the settings ask for."""
    from rlm_worker.sandbox import SandboxConfig

    s = get_settings()
    return SandboxConfig(
        memory_bytes=s.sandbox_memory_mb * 1024 * 1024,
        isolation=s.sandbox_isolation,
        sandbox_uid=s.sandbox_uid,
        sandbox_gid=s.sandbox_gid,
    )


def check_sandbox_isolation() -> IsolationPlan:
    """Probe the OS layers once at worker start and log them (one line). With
    SANDBOX_ISOLATION=required and a layer missing, IsolationUnavailable: the worker must not start."""
    from rlm_worker.sandbox.isolation import checked_plan

    config = sandbox_config()
    return checked_plan(config.isolation, config.sandbox_uid, config.sandbox_gid)


@lru_cache(maxsize=1)
def tool_box() -> ToolBox:
    """The operator's custom tools (RLM_TOOLS, the `rlm_engine.tools` entry points), loaded once;
    a tool that cannot be loaded raises ToolRegistrationError naming it."""
    from rlm_worker.tool_registry import load_tool_box

    s = get_settings()
    return load_tool_box(s.rlm_tools, s.rlm_tools_offered, s.tool_timeout_seconds)


@lru_cache(maxsize=1)
def sandbox_factory() -> SandboxFactory:
    from rlm_worker.sandbox import make_sandbox_factory

    forbid_same_user_inspection()
    check_sandbox_isolation()
    tools = tuple((spec["name"], spec["signature"]) for spec in tool_box().sandbox_specs())
    return make_sandbox_factory(dataclasses.replace(sandbox_config(), tools=tools))


@lru_cache(maxsize=1)
def process_sandboxes() -> SlotPool:
    """The live REPL processes of this worker process, every execution together."""
    return SlotPool(get_settings().sandboxes_per_process(), "MAX_SANDBOXES_PER_PROCESS")


def forbid_same_user_inspection() -> bool:
    """Mark this worker non-dumpable, so a sandbox process of the same (non-root) user cannot read
    its `/proc/<pid>/environ` or memory, where the API keys are. Root is not stopped by this:
    run workers as an unprivileged user (the Dockerfile does). True if the flag is now set."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_dumpable, pr_get_dumpable = 4, 3
        libc.prctl(pr_set_dumpable, 0, 0, 0, 0)
        return libc.prctl(pr_get_dumpable, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        return False
