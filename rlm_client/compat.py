"""`RLM(...).completion(...)` shaped like the reference implementation's (`rlms`, `from rlm import RLM`),
so moving to RLM Engine is one line: `from rlm_client import RLM`.

It runs against a server when `base_url` (or `RLM_API_URL`) is set, else embedded in this process
(SQLite, as `rlm run`). The reference's parameters map onto an execution's model and guards; the
mapping and what differs are in docs/integrations/python.md.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from rlm_client.client import RLMClient
from rlm_client.errors import RLMClientError
from rlm_client.models import Execution

#: The reference's backends, as litellm provider prefixes (`vllm`: an OpenAI-compatible server,
#: reached through LLM_API_BASE). `litellm` is ours: `model_name` is used as it is.
PROVIDER_PREFIX = {
    "openai": "openai",
    "vllm": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "openrouter": "openrouter",
    "azure_openai": "azure",
    "litellm": "",
}
#: The reference's options that would change what runs and that RLM Engine cannot honour.
UNSUPPORTED = frozenset(
    {
        "custom_system_prompt",
        "custom_tools",
        "custom_sub_tools",
        "on_subcall_start",
        "on_subcall_complete",
        "on_iteration_start",
        "on_iteration_complete",
    }
)
#: Accepted so that existing calls keep working, and ignored (docs/integrations/python.md says why).
IGNORED = frozenset(
    {
        "environment",
        "environment_kwargs",
        "depth",
        "max_errors",
        "logger",
        "verbose",
        "compaction",
        "compaction_threshold_pct",
        "sampling_args",
        "sub_sampling_args",
        "orchestrator",
        "user_prologue",
    }
)
#: The question when only a context is given (the reference's root model then reads the request
#: from the context itself).
DEFAULT_QUESTION = "Do what the context asks, and give the answer."
#: Trace nodes that are one model call each: a root turn (`iteration`) or a sub-call (as /api/stats).
MODEL_CALL_KINDS = ("iteration", "llm_call", "compaction")


@dataclass
class ModelUsageSummary:
    total_calls: int
    total_input_tokens: int
    total_output_tokens: int
    total_cost: float | None = None


@dataclass
class UsageSummary:
    model_usage_summaries: dict[str, ModelUsageSummary]

    @property
    def total_cost(self) -> float | None:
        costs = [s.total_cost for s in self.model_usage_summaries.values() if s.total_cost is not None]
        return sum(costs) if costs else None

    @property
    def total_input_tokens(self) -> int:
        return sum(s.total_input_tokens for s in self.model_usage_summaries.values())

    @property
    def total_output_tokens(self) -> int:
        return sum(s.total_output_tokens for s in self.model_usage_summaries.values())


@dataclass
class RLMChatCompletion:
    """The reference's result record, plus the execution's own fields (its id opens the trace)."""

    root_model: str
    prompt: Any
    response: str
    usage_summary: UsageSummary
    execution_time: float
    metadata: dict[str, Any] | None = None
    error: str | None = None
    execution_id: str = ""
    status: str = ""
    answer_found: bool | None = None
    offline: bool = False
    execution: Execution | None = field(default=None, repr=False)


class ExecutionFailed(RLMClientError):
    """The execution ended without an answer (failed, timed out, cancelled); `.completion` has it all."""

    def __init__(self, completion: RLMChatCompletion) -> None:
        super().__init__(f"execution {completion.execution_id} {completion.status}: {completion.error}")
        self.completion = completion


def _tools_note(refused: list[str]) -> str:
    """Where tools come from instead: the server's operator registers them (docs/tools.md)."""
    if not {"custom_tools", "custom_sub_tools"} & set(refused):
        return ""
    return (
        " (tools run on the server: its operator registers them with RLM_TOOLS or the "
        "`rlm_engine.tools` entry points, and every execution's REPL offers them by name)"
    )


def litellm_model(backend: str, backend_kwargs: dict[str, Any]) -> str | None:
    """`backend` + `backend_kwargs["model_name"]` as a litellm model string (None: the server's default)."""
    if backend not in PROVIDER_PREFIX:
        raise ValueError(f"backend {backend!r} is not supported; use one of {sorted(PROVIDER_PREFIX)}")
    name = backend_kwargs.get("model_name")
    if not name:
        return None
    prefix = PROVIDER_PREFIX[backend]
    return f"{prefix}/{name}" if prefix else str(name)


def execution_options(
    max_depth: int | None,
    max_iterations: int | None,
    max_budget: float | None,
    max_timeout: float | None,
    max_tokens: int | None,
) -> dict[str, Any]:
    """The reference's limits as our guards; those left None come from the server's defaults."""
    options = {
        # Reference: depth >= max_depth falls back to a plain model call, so max_depth=1 allows
        # no nested RLM; ours counts the nesting of rlm_query itself.
        "max_recursion_depth": None if max_depth is None else max(0, max_depth - 1),
        "max_iterations": max_iterations,
        "max_cost_usd": max_budget,
        "timeout_seconds": max_timeout,
        "max_total_tokens": max_tokens,
    }
    return {key: value for key, value in options.items() if value is not None}


def usage_from_trace(nodes: list[Any]) -> UsageSummary:
    """Calls, tokens and cost per model, summed over the trace's model calls (root turns and sub-calls)."""
    summaries: dict[str, ModelUsageSummary] = {}
    for node in nodes:
        if node.kind not in MODEL_CALL_KINDS or not node.model:
            continue
        s = summaries.setdefault(node.model, ModelUsageSummary(0, 0, 0, 0.0))
        s.total_calls += 1
        s.total_input_tokens += node.input_tokens or 0
        s.total_output_tokens += node.output_tokens or 0
        s.total_cost = (s.total_cost or 0.0) + (node.cost_usd or 0.0)
    return UsageSummary(summaries)


class RLM:
    """`RLM(backend="openai", backend_kwargs={"model_name": "gpt-4o"}).completion(context, root_prompt=question)`.

    Every parameter after `backend_kwargs` is passed by name. Ours: `base_url` and `token` (a
    server; default `RLM_API_URL`/`RLM_API_TOKEN`, embedded when no URL is set), `database_url`
    (embedded mode's database), `strategy` and `sub_model`. `persistent=True` keeps one session
    across calls (memory and REPL variables carry over).
    """

    def __init__(
        self,
        backend: str = "openai",
        backend_kwargs: dict[str, Any] | None = None,
        *,
        max_depth: int | None = None,
        max_iterations: int | None = None,
        max_budget: float | None = None,
        max_timeout: float | None = None,
        max_tokens: int | None = None,
        max_concurrent_subcalls: int | None = None,
        other_backends: list[str] | None = None,
        other_backend_kwargs: list[dict[str, Any]] | None = None,
        persistent: bool = False,
        base_url: str | None = None,
        token: str | None = None,
        database_url: str | None = None,
        sub_model: str | None = None,
        strategy: str | None = None,
        **reference_options: Any,
    ) -> None:
        refused = sorted(set(reference_options) & UNSUPPORTED)
        unknown = sorted(set(reference_options) - UNSUPPORTED - IGNORED)
        if refused or unknown:
            raise TypeError(
                f"RLM Engine does not support: {', '.join(refused + unknown)}{_tools_note(refused)}"
            )
        backend_kwargs = dict(backend_kwargs or {})
        self.model = litellm_model(backend, backend_kwargs)
        if other_backends and sub_model is None:
            sub_model = litellm_model(other_backends[0], (other_backend_kwargs or [{}])[0])
        self.sub_model, self.strategy, self.persistent = sub_model, strategy, persistent
        self.options = execution_options(max_depth, max_iterations, max_budget, max_timeout, max_tokens)
        if max_concurrent_subcalls is not None:  # the reference's name and meaning: sub-calls at once
            self.options["max_concurrent_subcalls"] = max_concurrent_subcalls
        self.base_url = base_url or os.environ.get("RLM_API_URL")
        if backend_kwargs.get("base_url") and backend_kwargs["base_url"] != os.environ.get("LLM_API_BASE"):
            warnings.warn(
                "backend_kwargs['base_url'] is not used: model endpoints are set on the server "
                "(embedded: LLM_API_BASE in this process's environment)",
                stacklevel=2,
            )
        self._token, self._database_url = token, database_url
        self._client: RLMClient | None = None
        self._session_id: str | None = None

    @property
    def client(self) -> RLMClient:
        """The server's client, or the embedded app's (built on first use)."""
        if self._client is None:
            if self.base_url:
                self._client = RLMClient(self.base_url, self._token)
            else:
                from rlm_client.embedded import EMBEDDED_URL, embedded_transport

                self._client = RLMClient(EMBEDDED_URL, transport=embedded_transport(self._database_url))
        return self._client

    def completion(
        self, prompt: str | dict[str, Any] | list[Any], root_prompt: str | None = None, *, context: Any = None
    ) -> RLMChatCompletion:
        """Answer over a long input. As in the reference, `prompt` is the input and `root_prompt`
        the question; or pass the input as `context=` and `prompt` is the question. Raises
        `ExecutionFailed` when the execution fails, times out or is cancelled."""
        if context is not None:
            question, given = str(prompt), context
        else:
            question, given = root_prompt or DEFAULT_QUESTION, prompt
        started = time.perf_counter()
        model, sub_model = self._models_here()
        execution = self.client.run(
            question,
            given,
            session_id=self._session(),
            model=model,
            sub_model=sub_model,
            strategy=self.strategy,
            options=self.options or None,
        )
        result = self._result(execution, given, time.perf_counter() - started)
        if execution.status != "succeeded":
            raise ExecutionFailed(result)
        return result

    def _models_here(self) -> tuple[str | None, str | None]:
        """The models to ask for. Embedded, with no key (and no LLM_API_BASE) for the chosen
        models but the local model installed, the offline plan runs, as `rlm run` with no model
        does (docs/integrations/python.md); a warning says so and `result.offline` is True. A
        server decides for itself (its keys are not this process's)."""
        chosen = [m for m in (self.model, self.sub_model) if m]
        if self.base_url or not chosen:
            return self.model, self.sub_model
        from rlm_shared.strategies.offline import provider_configured
        from rlm_worker.engine import local_model

        api_base = os.environ.get("LLM_API_BASE")
        unreachable = [m for m in chosen if not provider_configured(m, api_base)]
        if not unreachable or not local_model.available():
            return self.model, self.sub_model
        warnings.warn(
            f"no API key for {', '.join(unreachable)} (set its provider's key, or LLM_API_BASE): "
            f"running the offline plan instead (the bundled {local_model.DEFAULT_LOCAL_MODEL} "
            "reads the chunks; result.offline is True)",
            stacklevel=3,
        )
        return None, None

    def _session(self) -> str | None:
        """`persistent`: one session for every call of this object, its context each call's own."""
        if self.persistent and self._session_id is None:
            self._session_id = self.client.create_session(
                f"rlm-client {time.strftime('%Y-%m-%d %H:%M:%S')}"
            ).id
        return self._session_id

    def _result(self, execution: Execution, prompt: Any, seconds: float) -> RLMChatCompletion:
        trace = self.client.trace(execution.id)
        return RLMChatCompletion(
            root_model=execution.root_model or "",
            prompt=prompt,
            response=execution.final_answer or "",
            usage_summary=usage_from_trace(trace.nodes),
            execution_time=seconds,
            metadata=execution.model_dump(mode="json"),
            error=execution.error or execution.guard_hit,
            execution_id=execution.id,
            status=execution.status,
            answer_found=execution.answer_found,
            offline=execution.offline,
            execution=execution,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
