"""What an eval compares: the suite (tasks, sizes, items per size, seed) and the configurations.

A configuration is what a team chooses between: a root model (or a built-in strategy, or a root
program of its own), a sub-model, and limits (chunk size, iterations, depth, sub-calls, time).
Given as CLI options (one configuration), or a YAML/JSON file (several):

    name: gpt-5-mini vs local
    tasks: [needle, aggregation]
    sizes: [32000, 128000]
    items: 3
    seed: 7
    configs:
      - {name: rlm-mini, model: openai/gpt-5-mini, sub_model: openai/gpt-5-nano}
      - {name: search-local, strategy: search, sub_model: local/smollm2, chunk_size: 1000}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rlm_api.evals.tasks import TaskError
from rlm_api.evals.tasks.user import TaskLine
from rlm_api.schemas import Text

#: The bundled suites: tasks, sizes (characters), items per task and size.
SUITES: dict[str, dict[str, Any]] = {
    # CI: one item of each generated task at one small size.
    "tiny": {"tasks": ["needle", "multi_needle", "aggregation", "pairs"], "sizes": [6000], "items": 1},
    # The offline suite (`rlm eval --suite small`): minutes on a laptop with the local model.
    "small": {
        "tasks": ["needle", "multi_needle", "aggregation", "pairs"],
        "sizes": [8000, 32000],
        "items": 1,
    },
    # A paper-style table with hosted models: 2^13 to 2^18 tokens (about 4 characters a token).
    "paper": {
        "tasks": ["needle", "multi_needle", "aggregation", "pairs"],
        "sizes": [32_768, 131_072, 524_288, 1_048_576],
        "items": 5,
    },
}
STRATEGY_NAMES = ("search", "find", "map_reduce")
#: Largest suite an eval may submit (configurations x items, baselines included).
MAX_EXECUTIONS = 2000
#: Most characters of generated input one eval may make (items x sizes), checked before any is made.
MAX_GENERATED_CHARS = 100_000_000


class EvalConfig(BaseModel):
    """One configuration under test. Unset fields take the environment's defaults, as `rlm run`."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(None, min_length=1, max_length=200)
    model: Text | None = Field(None, min_length=1, max_length=200)
    sub_model: Text | None = Field(None, min_length=1, max_length=200)
    strategy: str | None = None
    root_code: Text | None = Field(None, min_length=1, max_length=200_000)
    chunk_size: int | None = Field(None, ge=100)
    max_iterations: int | None = Field(None, ge=1, le=200)
    max_recursion_depth: int | None = Field(None, ge=0, le=50)
    max_sub_calls: int | None = Field(None, ge=1)
    timeout_seconds: float | None = Field(None, gt=0)
    max_cost_usd: float | None = Field(None, ge=0)
    max_total_tokens: int | None = Field(None, ge=1)
    #: The base model's window for the baseline, in tokens; default: litellm's model map, else 8192.
    window_tokens: int | None = Field(None, ge=256)

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str | None) -> str | None:
        if value is not None and value not in STRATEGY_NAMES:
            raise ValueError(f"unknown strategy {value!r}; built in: {', '.join(STRATEGY_NAMES)}")
        return value

    def label(self, index: int) -> str:
        if self.name:
            return self.name
        parts = [self.model or (f"strategy {self.strategy}" if self.strategy else None)]
        parts.append("root_code" if self.root_code else None)
        parts.append(f"sub {self.sub_model}" if self.sub_model else None)
        parts.append(f"chunk {self.chunk_size}" if self.chunk_size else None)
        text = ", ".join(p for p in parts if p)
        return text or ("default" if index == 0 else f"config {index + 1}")

    def limits(self) -> dict[str, Any]:
        """The execution options this configuration sets (the rest are the environment's)."""
        keys = (
            "chunk_size",
            "max_iterations",
            "max_recursion_depth",
            "max_sub_calls",
            "timeout_seconds",
            "max_cost_usd",
            "max_total_tokens",
        )
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


class EvalSpec(BaseModel):
    """A whole eval: which items (suite or tasks, sizes, items per size, seed) under which configs."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(None, min_length=1, max_length=200)
    suite: str | None = None
    tasks: list[str] | None = None
    task_files: list[Text] = Field(default_factory=list)
    #: Tasks given inline, as the lines of a task file would be (`input` only, no files).
    user_tasks: list[TaskLine] = Field(default_factory=list, max_length=2000)
    sizes: list[int] | None = None
    items: int | None = Field(None, ge=1, le=200)
    seed: int = 0
    baseline: bool = True
    configs: list[EvalConfig] = Field(default_factory=lambda: [EvalConfig()], min_length=1, max_length=20)

    @field_validator("suite")
    @classmethod
    def _known_suite(cls, value: str | None) -> str | None:
        if value is not None and value not in SUITES:
            raise ValueError(f"unknown suite {value!r}; bundled: {', '.join(SUITES)}")
        return value

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(s < 1000 or s > 10_000_000 for s in value)):
            raise ValueError("sizes are characters, each between 1,000 and 10,000,000")
        return value

    @model_validator(mode="after")
    def _fill_from_suite(self) -> EvalSpec:
        from rlm_api.evals.tasks import task_names

        own_tasks = bool(self.task_files or self.user_tasks)
        suite = SUITES[self.suite or "small"]
        if self.tasks is None:
            self.tasks = [] if own_tasks and self.suite is None else list(suite["tasks"])
        unknown = [t for t in self.tasks if t not in task_names()]
        if unknown:
            raise ValueError(f"unknown task {unknown[0]!r}; bundled: {', '.join(task_names())}")
        self.sizes = self.sizes or list(suite["sizes"])
        self.items = self.items or int(suite["items"])
        generated = [t for t in self.tasks if t in SUITES["paper"]["tasks"]]
        runs = len(self.configs) + (1 if self.baseline else 0)
        planned = (len(generated) * len(self.sizes) * self.items + len(self.user_tasks)) * runs
        if planned > MAX_EXECUTIONS:
            raise ValueError(f"the eval would run {planned:,} executions; at most {MAX_EXECUTIONS:,}")
        if len(generated) * sum(self.sizes) * self.items > MAX_GENERATED_CHARS:
            raise ValueError(f"the eval would generate over {MAX_GENERATED_CHARS:,} characters of input")
        labels = [c.label(i) for i, c in enumerate(self.configs)]
        if len(set(labels)) != len(labels):
            raise ValueError("two configurations have the same name; name them (`name:`)")
        return self

    def config_labels(self) -> list[str]:
        return [c.label(i) for i, c in enumerate(self.configs)]


def load_spec_file(path: Path) -> dict[str, Any]:
    """A YAML or JSON eval file as a mapping (validated by EvalSpec)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except (OSError, yaml.YAMLError) as exc:
        raise TaskError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise TaskError(f"{path}: expected a mapping with `configs:` (and tasks, sizes, ...)")
    return data
