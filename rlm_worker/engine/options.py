"""Per-execution options: every guard, with defaults that the environment may override."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
