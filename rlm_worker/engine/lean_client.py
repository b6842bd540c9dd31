"""The lean path for OpenAI-compatible endpoints: the `openai` SDK's pooled clients instead of litellm.

Why: in a fan-out on two cores the model client sets the floor. This path spends about a third
of litellm's CPU a call (`python -m bench.client_cpu`, BENCHMARKS.md): the rest is litellm's own
routing, parameter mapping and response rebuilding, none of which an OpenAI-compatible endpoint
needs. It keeps litellm's aiohttp-backed HTTP transport (cheaper than httpx's own pool at a
fan-out's concurrency).

What takes the lean path: every model that litellm would send to an OpenAI-compatible server
through its own `openai` route: `openai/...` (LLM_API_BASE, OpenAI's API, or the operator's
OPENAI_BASE_URL / OPENAI_API_BASE) and `local/...` (the in-process llama.cpp server). Everything
else (anthropic, bedrock, ...) keeps litellm, and so does the whole lean path when
LEAN_MODEL_CLIENT=false.

What stays identical: the allow-list and key checks (`LiteLLMClient._request_kwargs`, before every
attempt), the retry policy (the same tenacity wrapper), costs (configured prices, else litellm's
price map), and errors: a failed request's exception goes through the same wrapping and the same
`litellm.exception_type` mapping that litellm applies to its own `openai` route, then through
`classify`, so a ModelError's message and `transient` flag are the ones litellm would have given.
tests/engine/test_lean_client.py runs the same calls through both paths and compares them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import weakref
from typing import Any

from rlm_worker.engine.llm import LiteLLMClient, _lib, classify
from rlm_worker.engine.ports import ModelError
from rlm_worker.engine.types import ModelReply

_OPENAI_ROUTE = "openai/"
_DEFAULT_BASE = "https://api.openai.com/v1"
#: Request fields that litellm's `openai` route passes to the server as they are.
_BODY_FIELDS = ("temperature", "seed", "stop")


def lean_route(kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """Where the lean client sends a call whose litellm arguments are `kwargs`, or None for litellm.

    Only litellm's plain `openai/` route is taken, with the base URL and organisation litellm
    itself would resolve (its `litellm.api_base` / `organization` globals are left to litellm;
    while litellm is not imported, nothing can have set them)."""
    litellm = sys.modules.get("litellm")
    model = kwargs["model"]
    if not model.startswith(_OPENAI_ROUTE) or (litellm and (litellm.api_base or litellm.organization)):
        return None
    return {
        "name": model[len(_OPENAI_ROUTE) :],
        "base_url": kwargs.get("api_base")
        or os.environ.get("OPENAI_BASE_URL")
        or os.environ.get("OPENAI_API_BASE")
        or _DEFAULT_BASE,
        "api_key": kwargs["api_key"],
        "organization": os.environ.get("OPENAI_ORGANIZATION") or None,
        "timeout": kwargs["timeout"],
        "body": {field: kwargs[field] for field in _BODY_FIELDS if field in kwargs},
    }


class _Pools:
    """One SDK client per (server, key): a sync one per process, an async one per event loop
    (an httpx connection belongs to the loop that opened it). Each keeps its connections open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sync: dict[tuple[str, str, str | None], Any] = {}
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, str, str | None], Any]
        ]
        self._async = weakref.WeakKeyDictionary()

    def sync(self, route: dict[str, Any]) -> Any:
        key = (route["base_url"], route["api_key"], route["organization"])
        client = self._sync.get(key)
        if client is None:
            import openai

            with self._lock:
                client = self._sync.setdefault(key, openai.OpenAI(**_client_args(route)))
        return client

    def for_running_loop(self, route: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        key = (route["base_url"], route["api_key"], route["organization"])
        with self._lock:
            clients = self._async.setdefault(loop, {})
            client = clients.get(key)
            if client is None:
                import openai

                # The local server takes one slot's calls at a time: the SDK's own pool is enough,
                # and litellm (seconds to import) stays out of an offline `rlm run`.
                transport = {} if route.get("local") else {"http_client": _async_transport()}
                client = clients[key] = openai.AsyncOpenAI(**_client_args(route), **transport)
        return client


def _async_transport() -> Any:
    """litellm's own async HTTP client (an aiohttp transport under httpx): httpx's default pool
    spends ~3× the CPU a call at a fan-out's hundreds of concurrent requests (BENCHMARKS.md)."""
    from litellm.llms.openai.common_utils import BaseOpenAILLM

    return BaseOpenAILLM._get_async_http_client()


def _client_args(route: dict[str, Any]) -> dict[str, Any]:
    # Retries are the engine's (tenacity, the same policy as litellm's path), never the SDK's.
    return {
        "base_url": route["base_url"],
        "api_key": route["api_key"],
        "organization": route["organization"],
        "max_retries": 0,
    }


class LeanModelClient(LiteLLMClient):
    """LiteLLMClient whose OpenAI-compatible calls skip litellm (see the module docstring).

    `lean=False` makes it exactly a LiteLLMClient (LEAN_MODEL_CLIENT=false)."""

    def __init__(self, *args: Any, lean: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lean = lean
        self._pools = _Pools()

    def _route(self, model: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        local = model.startswith("local/")
        if not (self.lean and local):
            self._litellm()  # prices registered, litellm imported: the cost and error steps use it
        kwargs = self._request_kwargs(model)  # the allow-list and the key, before every attempt
        route = lean_route(kwargs) if self.lean else None
        if route is not None:
            route["local"] = local  # costs nothing: litellm is needed only if the call fails
        return kwargs, route

    def _complete_once(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        kwargs, route = self._route(model)
        if route is None:
            return super()._complete_once(model, messages)
        client = self._pools.sync(route)
        try:
            response = client.post(**_request(route, messages))
        except Exception as exc:
            if _needs_litellm(exc):
                return super()._complete_once(model, messages)
            raise _as_litellm_error(exc, kwargs, route, None, messages) from None
        return self._reply(model, response)

    async def _acomplete_once(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        kwargs, route = self._route(model)
        if route is None:
            return await super()._acomplete_once(model, messages)
        client = self._pools.for_running_loop(route)
        started = time.time()
        try:
            response = await client.post(**_request(route, messages))
        except Exception as exc:
            if _needs_litellm(exc):
                return await super()._acomplete_once(model, messages)
            raise _as_litellm_error(exc, kwargs, route, started, messages) from None
        return self._reply(model, response)

    def _cost(self, model: str, response: Any, input_tokens: int, output_tokens: int) -> tuple[float, bool]:
        if model in self.prices or model.startswith("local/"):
            return super()._cost(model, response, input_tokens, output_tokens)
        if not self.lean or isinstance(response, _lib().ModelResponse):
            return super()._cost(model, response, input_tokens, output_tokens)
        # litellm's price map, from a ModelResponse like the one its own path would have priced.
        return super()._cost(
            model, _lib().ModelResponse(**response.model_dump()), input_tokens, output_tokens
        )


def _request(route: dict[str, Any], messages: list[dict[str, str]]) -> dict[str, Any]:
    """The SDK's low-level POST, as litellm's `openai` route makes it: the body as given, no
    parameter transform (which walks every message), the typed response built without validation."""
    from openai.types.chat import ChatCompletion

    return {
        "path": "/chat/completions",
        "body": {"model": route["name"], "messages": messages, **route["body"]},
        "cast_to": ChatCompletion,
        "options": {"timeout": route["timeout"]},
    }


def _needs_litellm(exc: Exception) -> bool:
    """A 400 that litellm turns into a truncated answer (an output-token limit) rather than an error."""
    import openai

    if not isinstance(exc, openai.BadRequestError):
        return False
    try:
        from litellm.llms.openai.common_utils import is_output_token_limit_error
    except ImportError:
        return False
    return bool(is_output_token_limit_error(exc))


def _as_litellm_error(
    exc: Exception,
    kwargs: dict[str, Any],
    route: dict[str, Any],
    started: float | None,
    messages: list[dict[str, str]],
) -> ModelError:
    """The ModelError litellm's `openai` route raises for the same failure: its timeout note (async
    calls only, `started` set), its OpenAIError wrapper (a 422 passes unwrapped), its
    `exception_type` mapping, then `classify`."""
    import openai
    from litellm.llms.openai.common_utils import OpenAIError

    if isinstance(exc, openai.APITimeoutError) and started is not None:
        exc.message += (
            f" - timeout value={route['timeout']}, time taken={round(time.time() - started, 2)} seconds"
        )
    original: Exception = exc
    if not isinstance(exc, openai.UnprocessableEntityError):
        response = getattr(exc, "response", None)
        headers = getattr(exc, "headers", None)
        if headers is None and response:
            headers = getattr(response, "headers", None)
        original = OpenAIError(
            status_code=getattr(exc, "status_code", 500),
            message=getattr(exc, "message", str(exc)),
            headers=headers,
            body=getattr(exc, "body", None),
        )
    try:
        mapped = _lib().exception_type(
            model=kwargs["model"],
            custom_llm_provider="openai",
            original_exception=original,
            completion_kwargs={"model": kwargs["model"], "messages": messages},
            extra_kwargs={},
        )
    except Exception as raised:  # exception_type raises the mapped exception in some branches
        mapped = raised
    return classify(mapped)
