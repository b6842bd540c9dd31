"""The HTTP shapes of evals: the request `POST /api/evals` validates, and the records it returns
(also what `/api/openapi.json` publishes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, field_validator

from rlm_api.evals.configs import EvalSpec
from rlm_api.evals.tasks.user import TaskLine


class EvalRequest(EvalSpec):
    """An eval spec (docs/eval.md) whose own tasks come inline as `user_tasks` (no server files)."""

    @field_validator("task_files")
    @classmethod
    def _no_files(cls, value: list[str]) -> list[str]:
        if value:
            raise ValueError("task_files cannot be read over HTTP; send the tasks as user_tasks")
        return value

    @field_validator("user_tasks")
    @classmethod
    def _inline(cls, value: list[TaskLine]) -> list[TaskLine]:
        if any(line.input_file for line in value):
            raise ValueError("user_tasks take the text as input, not input_file")
        return value


class EvalLinks(BaseModel):
    self: str
    report_markdown: str
    plot_svg: str
    plot_png: str
    dashboard: str


class EvalOut(BaseModel):
    """An eval run: its status, how many of its executions finished, and the report once all have
    (`rows` per configuration, task and size; `items` each linked to its execution's trace)."""

    id: str
    name: str
    status: str
    created_at: str
    finished_at: str | None
    executions: int
    finished: int
    spec: dict[str, Any]
    links: EvalLinks
    report: dict[str, Any] | None = None


class EvalList(BaseModel):
    items: list[EvalOut]
