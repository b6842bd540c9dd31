"""Per-execution options: every guard, with defaults that the environment may override."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Names a request might use to bring tools of its own. Tools are the operator's (engine/tools.py).
TOOL_FIELDS = ("tools", "custom_tools", "custom_sub_tools", "rlm_tools")


def refuse_tool_fields(data: Any) -> Any:
    """A request cannot register tools: say so, naming the field, rather than "extra input"."""
    if isinstance(data, dict):
        for name in TOOL_FIELDS:
            if name in data:
                raise ValueError(
                    f"{name}: a request cannot register tools; the server's operator registers them "
                    "(RLM_TOOLS or the rlm_engine.tools entry points, docs/tools.md) and every REPL "
                    "offers them by name"
                )
    return data


class SkippedFile(BaseModel):
    """A file of a folder or archive input that was not read, and why."""

    model_config = ConfigDict(extra="forbid")

    name: str
    reason: str


class ExecutionOptions(BaseModel):
    """Guards and knobs for one execution. Validated at the API edge with this same model."""

    model_config = ConfigDict(extra="forbid")

    max_iterations: int = Field(30, ge=1, le=1000, description="Root-loop iterations before a forced answer.")
    max_recursion_depth: int = Field(10, ge=0, le=50, description="Deepest rlm_query nesting.")
    max_sub_calls: int = Field(
        5000, ge=0, le=1_000_000, description="llm_query/rlm_query calls in the whole tree."
    )
    max_total_tokens: int = Field(20_000_000, ge=1, description="Input + output tokens over the whole tree.")
    max_cost_usd: float = Field(50.0, ge=0, description="USD spent over the whole tree.")
    timeout_seconds: float = Field(300.0, gt=0, le=86_400, description="Wall-clock limit for the execution.")
    chunk_size: int = Field(
        50_000, ge=100, le=10_000_000, description="Suggested chunk size shown to the model."
    )
    output_limit: int = Field(20_000, ge=200, le=1_000_000, description="Characters of cell output fed back.")
    cell_timeout_seconds: float = Field(
        60.0, gt=0, le=3600, description="Wall-clock limit of one code cell (sub-call waits excluded)."
    )
    cell_cpu_seconds: int = Field(10, ge=1, le=3600, description="CPU seconds of one code cell.")
    max_tool_calls: int = Field(
        1000, ge=0, le=100_000, description="Calls of the server's custom tools in the whole tree (0: none)."
    )
    max_concurrent_subcalls: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Sub-calls of this execution in flight at once: its llm_query calls, from every agent "
        "of the tree together, and the rlm_query children of one batch; unset = as many as the workers take. "
        "The server caps it at MAX_CONCURRENT_SUBCALLS_CEILING.",
    )
    max_ranking_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Worker time rank_passages and rank_by_meaning may take over the whole tree.",
    )
    inherit_memory: bool = Field(False, description="Default for rlm_query(inherit_memory=...).")
    strategy: Literal["search", "find", "map_reduce"] | None = Field(
        None, description="Run this built-in root program instead of a root model (rlm_shared/strategies)."
    )
    root_code: str | None = Field(
        None, max_length=200_000, description="Your own root program, run instead of a root model."
    )
    skipped: list[SkippedFile] = Field(
        default_factory=list,
        description="Files of a folder or archive input that were not read, and why (set by the input "
        "reader when the context arrives with the request; a record, not a guard).",
    )

    _no_tools = model_validator(mode="before")(refuse_tool_fields)
