"""Request and response schemas (pydantic): the API validates with these and documents them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlm_worker.engine.options import ExecutionOptions

ContextValue = str | list[Any] | dict[str, Any]


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    context: ContextValue | None = None
    memory: dict[str, str] = Field(default_factory=dict)


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_query: str = Field(min_length=1, max_length=100_000)
    session_id: str | None = None
    context: ContextValue | None = None
    model: str | None = Field(None, min_length=1, max_length=200)
    sub_model: str | None = Field(None, min_length=1, max_length=200)
    options: ExecutionOptions = Field(default_factory=ExecutionOptions)
    wait: float | None = Field(None, ge=0, le=300)

    @model_validator(mode="after")
    def _needs_a_context(self) -> ExecuteRequest:
        if self.session_id is None and self.context is None:
            raise ValueError("give either session_id or context")
        return self
