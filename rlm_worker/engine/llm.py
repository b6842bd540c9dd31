"""Model calls through litellm: one client per process, retries for transient errors, cost from usage."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from rlm_worker.engine import local_model
from rlm_worker.engine.model_policy import ModelNotAllowed, ModelPolicy
from rlm_worker.engine.ports import ModelError
from rlm_worker.engine.provider_keys import MissingApiKey, UnknownModel, litellm_credentials
from rlm_worker.engine.types import ModelReply

# litellm fetches its price map from the internet unless told not to; these machines have no route out.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

_TRANSIENT_NAMES = (
    "RateLimitError",
    "APIConnectionError",
    "Timeout",
    "APITimeoutError",
    "InternalServerError",
    "ServiceUnavailableError",
    "BadGatewayError",
)
#: Errors no retry can fix, whatever status code litellm gave them (it wraps some as 500s).
_PERMANENT_NAMES = (
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "BadRequestError",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "ContextWindowExceededError",
    "ContentPolicyViolationError",
    "InvalidRequestError",
)
#: Messages of a missing or rejected key, which litellm sometimes raises as InternalServerError.
_CREDENTIAL_MESSAGES = ("missing credentials", "api_key client option must be set", "invalid api key")
#: litellm's lists of logging callbacks: when every one is empty, its success logging has no reader.
_CALLBACK_LISTS = (
    "callbacks",
    "input_callback",
    "success_callback",
    "failure_callback",
    "service_callback",
    "_async_input_callback",
    "_async_success_callback",
    "_async_failure_callback",
)
_import_lock = threading.Lock()
_litellm: Any = None
_logging_switch: ContextVar[bool] | None = None


def _lib() -> Any:
    """Import litellm once per process (it takes ~2 s)."""
    global _litellm
    if _litellm is None:
        with _import_lock:
            if _litellm is None:
                import litellm

                litellm.suppress_debug_info = True
                litellm.telemetry = False
                _find_logging_switch()
                _litellm = litellm
    return _litellm


def _find_logging_switch() -> None:
    global _logging_switch
    try:  # a private module: without it, calls log as usual (tests/engine fail loudly if it goes)
        from litellm._internal_context import is_internal_call
    except ImportError:
        return
    _logging_switch = is_internal_call


def logging_switch() -> ContextVar[bool] | None:
    """litellm's flag for calls whose logging is done elsewhere (`is_internal_call`), if it has one."""
    _lib()
    return _logging_switch


@contextmanager
def without_unread_logging() -> Iterator[None]:
    """Skip litellm's success logging for the calls made inside, unless a callback would read it.

    After every call litellm builds a logging payload (prices, usage, metadata) for its callbacks,
    on a background thread: ~1 ms of CPU a call (a quarter of its whole cost; BENCHMARKS.md) that,
    under the GIL, also delays the trace write which follows the call. This engine configures no
    litellm callbacks (it prices and traces calls itself), so nobody reads that payload. A
    callback someone does register keeps litellm's logging on.
    """
    litellm = _lib()
    if _logging_switch is None or any(getattr(litellm, name, None) for name in _CALLBACK_LISTS):
        yield
        return
    token = _logging_switch.set(True)
    try:
        yield
    finally:
        _logging_switch.reset(token)


def register_prices(prices: dict[str, dict[str, float]]) -> None:
    """Tell litellm the configured prices, so its own per-call cost step finds the model at once:
    for a model missing from its price map it searched fallbacks twice a call, ~0.6 ms of CPU."""
    if not prices:
        return
    entries = {
        model: {
            "input_cost_per_token": price.get("input_cost_per_token", 0.0),
            "output_cost_per_token": price.get("output_cost_per_token", 0.0),
            # litellm's own default, said explicitly: left out, it warns at every worker start.
            "cache_creation_input_token_cost": price.get("cache_creation_input_token_cost", 0.0),
            "cache_read_input_token_cost": price.get("cache_read_input_token_cost", 0.0),
            "litellm_provider": model.split("/", 1)[0] if "/" in model else "openai",
            "mode": "chat",
        }
        for model, price in prices.items()
    }
    _lib().register_model(entries)


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, ModelError) and exc.transient


def classify(exc: Exception) -> ModelError:
    """Turn a provider exception into a ModelError that knows whether a retry can help."""
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    message = str(exc).splitlines()[0][:500] if str(exc) else name
    permanent = (
        name in _PERMANENT_NAMES
        or (isinstance(status, int) and status in (400, 401, 403, 404, 422))
        or any(text in message.lower() for text in _CREDENTIAL_MESSAGES)
    )
    transient = not permanent and (
        name in _TRANSIENT_NAMES or (isinstance(status, int) and (status == 429 or status >= 500))
    )
    return ModelError(f"{name}: {message}", transient=transient)


class LiteLLMClient:
    """The production ModelClient. `api_base` serves every `openai/...` model from one server.

    Before any request: the model must pass `policy` (MODEL_ALLOWLIST) and have a key of its own
    (`provider_keys`); otherwise the call fails at once with a permanent ModelError.
    """

    def __init__(
        self,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 4,
        prices: dict[str, dict[str, float]] | None = None,
        policy: ModelPolicy | None = None,
    ) -> None:
        self.api_base = api_base
        self.api_key = api_key
        self.policy = policy or ModelPolicy.allow_all()
        self.timeout = timeout
        self.max_retries = max_retries
        self.prices = prices or {}
        # One policy for both paths; on a coroutine tenacity waits with asyncio.sleep.
        policy = retry(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_attempt(max_retries + 1),
            wait=wait_exponential_jitter(initial=0.5, max=20, jitter=random.uniform(0.1, 1.0)),
            reraise=True,
        )
        self._complete_with_retry = policy(self._complete_once)
        self._acomplete_with_retry = policy(self._acomplete_once)
        self._prices_registered = False

    def complete(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        return self._complete_with_retry(model, messages)

    async def acomplete(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        """`complete` on an event loop: litellm's async path costs ~30% less CPU a call than its sync one
        on many threads, which is what bounds a CPU-starved leaf worker."""
        return await self._acomplete_with_retry(model, messages)

    def _litellm(self) -> Any:
        """litellm, told this client's prices before its first call (idempotent, so a race is harmless)."""
        if not self._prices_registered:
            register_prices(self.prices)
            self._prices_registered = True
        return _lib()

    def _request_kwargs(self, model: str) -> dict[str, Any]:
        """litellm's arguments; a model off the allow-list or without its key raises ModelError."""
        try:
            self.policy.check(model)
            kwargs: dict[str, Any] = {"model": model, "timeout": self.timeout, "num_retries": 0}
            if local_model.is_local(model):  # `local/<name>`: openai/<name> at this process's server
                kwargs.update(local_model.litellm_kwargs(model))
            else:
                kwargs.update(litellm_credentials(model, self.api_base, self.api_key))
        except (ModelNotAllowed, MissingApiKey, UnknownModel) as exc:
            raise ModelError(str(exc), transient=False) from None
        except local_model.LocalModelUnavailable as exc:
            raise classify(exc) from None
        return kwargs

    def _complete_once(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        litellm = self._litellm()
        kwargs = self._request_kwargs(model)
        try:
            with without_unread_logging():
                response = litellm.completion(messages=messages, **kwargs)
        except Exception as exc:  # provider errors come in many classes; classify them all
            raise classify(exc) from None
        return self._reply(model, response)

    async def _acomplete_once(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        litellm = self._litellm()
        kwargs = self._request_kwargs(model)
        try:
            with without_unread_logging():
                response = await litellm.acompletion(messages=messages, **kwargs)
        except Exception as exc:
            raise classify(exc) from None
        return self._reply(model, response)

    def _reply(self, model: str, response: Any) -> ModelReply:
        text = response.choices[0].message.content or ""
        usage = getattr(response, "usage", None)
        input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        output_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        cost, known = self._cost(model, response, input_tokens, output_tokens)
        return ModelReply(
            text=text,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            cost_known=known,
        )

    def _cost(self, model: str, response: Any, input_tokens: int, output_tokens: int) -> tuple[float, bool]:
        if local_model.is_local(model):
            return 0.0, True
        price = self.prices.get(model)
        if price:
            return (
                input_tokens * price.get("input_cost_per_token", 0.0)
                + output_tokens * price.get("output_cost_per_token", 0.0),
                True,
            )
        try:
            return float(_lib().completion_cost(completion_response=response, model=model) or 0.0), True
        except Exception:  # ModelNotMappedError and friends: unknown price, not an error
            return 0.0, False
