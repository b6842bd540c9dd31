"""Request and response schemas (pydantic): the API validates with these, and `openapi.py` documents
the very same models, so the contract cannot drift from the code.
"""

from __future__ import annotations

import functools
import json
import math
import os
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from rlm_shared.models import EXECUTION_STATUSES, NODE_KINDS
from rlm_shared.strategies import STRATEGIES
from rlm_worker.engine.local_model import is_local
from rlm_worker.engine.memory import blocks_problem
from rlm_worker.engine.options import ExecutionOptions, refuse_tool_fields

#: Ids are uuid4 hex; anything else cannot name a row, so it is a 404 or a 422, never a query.
ID_PATTERN = r"^[0-9a-f]{32}$"
#: How long `POST /api/execute` may block with `wait`; the server may cap it lower.
MAX_WAIT_SECONDS = 60.0


def storable_text(value: str) -> str:
    """Postgres text cannot hold NUL, and lone surrogates cannot be encoded: refuse both up front."""
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return value


Text = Annotated[str, AfterValidator(storable_text)]


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Identifier = Annotated[str, Field(pattern=ID_PATTERN, description="A 32-character hex id.")]
ExecutionStatus = Literal["queued", "running", "succeeded", "failed", "timed_out", "cancelled"]
assert set(ExecutionStatus.__args__) == set(EXECUTION_STATUSES)  # type: ignore[attr-defined]
Strategy = Literal["search", "find", "map_reduce"]
assert set(Strategy.__args__) == set(STRATEGIES)  # type: ignore[attr-defined]
NodeKind = Literal["root", "iteration", "code", "llm_call", "child_rlm", "search", "compaction", "tool"]
assert set(NodeKind.__args__) == set(NODE_KINDS)  # type: ignore[attr-defined]


def storable_context(value: Any) -> Any:
    """A context is stored as text (JSON for lists and objects); check that text can be stored.
    An empty or blank one is refused: there would be nothing to answer from."""
    if not (value.strip() if isinstance(value, str) else value):
        raise ValueError("the context is empty")
    if isinstance(value, str):
        return storable_text(value)
    try:
        storable_text(json.dumps(value, ensure_ascii=False))
    except RecursionError:
        raise ValueError("the context is nested too deeply") from None
    return value


ContextValue = Annotated[
    str | list[Any] | dict[str, Any],
    AfterValidator(storable_context),
    Field(description="The input: a string, or a JSON list or object (then the REPL gets a list/dict)."),
]


@functools.cache
def _litellm() -> Any:
    """litellm takes ~2 s to import: once per process, and only when a request names a model."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the price map here
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def routable_model(value: str) -> str:
    """A model string is valid when litellm can tell which provider serves it, or it is `local/...`."""
    if is_local(value):
        return value
    try:
        model, provider, _, _ = _litellm().get_llm_provider(value)
    except Exception:
        raise ValueError(f"litellm cannot route the model {value!r}; use e.g. 'openai/gpt-4o-mini'") from None
    if not model or not provider:
        raise ValueError(f"the model {value!r} names no model after its provider")
    return value


ModelName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^\S+$",
        description="A litellm model string, or `local/<name>` for the bundled local model.",
    ),
    AfterValidator(routable_model),
]


class SessionCreate(BaseModel):
    """`POST /api/sessions`: a named context whose memory and variables outlive one execution."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[Text, Field(min_length=1, max_length=200)]
    context: ContextValue | None = None
    memory: dict[Annotated[Text, Field(max_length=200)], Text] = Field(
        default_factory=dict, description="Initial memory blocks, label -> text (the engine's limits)."
    )

    _no_tools = model_validator(mode="before")(refuse_tool_fields)

    @field_validator("memory")
    @classmethod
    def _memory_within_limits(cls, value: dict[str, str]) -> dict[str, str]:
        """The limits the model's own memory edits keep (rlm_worker/engine/memory.py)."""
        problem = blocks_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class ExecuteRequest(BaseModel):
    """`POST /api/execute`: one question over a session's context or a context given inline."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    user_query: Annotated[Text, Field(min_length=1, max_length=100_000), AfterValidator(not_blank)]
    session_id: Identifier | None = Field(None, description="Run over this session's context and memory.")
    context: ContextValue | None = None
    model: ModelName | None = Field(None, description="Root model; default DEFAULT_MODEL.")
    sub_model: ModelName | None = Field(None, description="Sub-call model; default SUB_MODEL.")
    options: ExecutionOptions = Field(
        default_factory=ExecutionOptions, description="Guards; unset ones come from the environment."
    )
    strategy: Strategy | None = Field(
        None, description="Same as `options.strategy`: a built-in root program instead of a root model."
    )
    root_code: Annotated[Text, Field(max_length=200_000)] | None = Field(
        None, description="Same as `options.root_code`: your own root program instead of a root model."
    )
    wait: float | None = Field(
        None,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="Block up to this many seconds; 200 with the result if it finished, else 202.",
    )

    _no_tools = model_validator(mode="before")(refuse_tool_fields)

    @field_validator("options", mode="after")
    @classmethod
    def _finite_options(cls, options: ExecutionOptions) -> ExecutionOptions:
        for name, value in options.model_dump().items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
        return options

    @model_validator(mode="after")
    def _root_program_into_options(self) -> ExecuteRequest:
        """Top-level `strategy`/`root_code` are shorthands: they land in `options` (and win there)."""
        given = {name: getattr(self, name) for name in ("strategy", "root_code") if getattr(self, name)}
        if given:
            self.options = self.options.model_copy(update=given)
        return self


class PageQuery(BaseModel):
    """Keyset pagination, newest first: pass the previous page's `next_cursor` as `cursor`."""

    model_config = ConfigDict(extra="ignore")

    limit: int = Field(50, ge=1, le=200, description="Items per page.")
    cursor: str | None = Field(
        None, max_length=200, pattern=r"^[A-Za-z0-9_=-]+$", description="`next_cursor` of the page before."
    )


class ExecutionQuery(PageQuery):
    status: ExecutionStatus | None = Field(None, description="Only executions in this status.")
    session_id: Identifier | None = Field(None, description="Only executions of this session.")
    agent_id: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None, description="Only executions a calling agent named with `X-Agent-Id`."
    )


class SessionQuery(PageQuery):
    pass


# --- responses -------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable name, e.g. `missing_field`.")
    message: str
    details: Any | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ExecutionLinks(BaseModel):
    self: str
    trace: str
    events: str
    cancel: str
    dashboard: str


class ExecutionOut(BaseModel):
    id: str
    status: ExecutionStatus
    session_id: str | None
    context_id: str
    user_query: str
    root_model: str
    sub_model: str
    options: dict[str, Any]
    final_answer: str | None
    answer_found: bool | None = Field(
        description="true: an answer was found; false: the execution succeeded but the context does not "
        'answer the question (final_answer "NONE"); null: the execution has not succeeded.'
    )
    error: str | None
    guard_hit: str | None
    forced_final: bool
    offline: bool = Field(
        description="Run on the offline plan: no model provider was configured, so the local model "
        "read the chunks and a built-in strategy played the root (as `rlm run` does)."
    )
    agent_id: str | None = Field(
        description="The calling agent, as its client named it in the `X-Agent-Id` header (Letta "
        "does over MCP); null when none was named."
    )
    iterations: int
    total_input_tokens: int
    total_output_tokens: int
    total_cost_usd: float
    llm_calls: int
    sub_calls: int
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    duration_seconds: float | None
    links: ExecutionLinks


class ExecutionSubmitted(ExecutionOut):
    """`POST /api/execute`'s answer: the execution record, as `GET /api/executions/<id>` reads it."""

    execution_id: str = Field(
        description="Alias of `id`, kept for clients of the first version of the API; prefer `id`."
    )


class ExecutionList(BaseModel):
    items: list[ExecutionOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class SkippedFileOut(BaseModel):
    name: str = Field(description="The file's path inside the uploaded archive.")
    reason: str


class SessionOut(BaseModel):
    id: str
    name: str
    context_id: str | None
    context_size: int | None = Field(description="Characters of the context.")
    memory: dict[str, Any]
    variables: dict[str, Any]
    created_at: str | None
    updated_at: str | None
    skipped: list[SkippedFileOut] = Field(
        default_factory=list,
        description="Only in the answer to a `POST /api/sessions` with uploads: files of an uploaded "
        "archive that were not read, and why.",
    )


class SessionList(BaseModel):
    items: list[SessionOut]
    next_cursor: str | None


class TraceNodeOut(BaseModel):
    id: str
    parent_id: str | None
    depth: int
    seq: int
    path: str
    kind: NodeKind
    model: str | None
    status: str
    prompt: str | None
    response: str | None
    code: str | None
    stdout: str | None
    stderr: str | None
    error: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    started_at: str | None
    finished_at: str | None
    duration_seconds: float | None


class Trace(BaseModel):
    execution_id: str
    nodes: list[TraceNodeOut] = Field(description="Every node, in display order (depth-first by path).")


class ModelUsage(BaseModel):
    model: str
    calls: int = Field(description="Model calls answered (sub-calls cancelled before an answer are not).")
    cancelled_calls: int = Field(0, description="Sub-calls stopped before the model answered them.")
    input_tokens: int
    output_tokens: int
    cost_usd: float


class Stats(BaseModel):
    executions: int
    by_status: dict[str, int]
    total_input_tokens: int
    total_output_tokens: int
    total_cost_usd: float
    no_answer_found: int = Field(
        0, description="Executions that succeeded but found no answer (also counted in by_status.succeeded)."
    )
    by_model: list[ModelUsage] = Field(description="Model calls (root turns and sub-calls) per model.")


class ComponentHealth(BaseModel):
    ok: bool
    detail: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded", "down"] = Field(
        description="`down` (503): database or broker unreachable; `degraded`: a queue has no worker."
    )
    dispatch: Literal["celery", "embedded"]
    database: ComponentHealth
    broker: ComponentHealth
    workers: dict[str, int] = Field(description="Live workers consuming each queue.")
