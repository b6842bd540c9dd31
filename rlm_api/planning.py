"""Who does what in one execution: the root model or a fixed root program, the sub-call model, the
options that follow from them, and whether the offline plan applies.

One function for every way in (`rlm run`, `POST /api/execute`, the dashboard's form), so an
execution asked for the same way runs the same way wherever it was asked: with no model chosen
and no provider reachable, the bundled local model answers the sub-calls and a built-in strategy
plays the root (`rlm_shared.strategies.offline`), and the record says so (`Execution.offline`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunPlan:
    """The models, the options they imply (a strategy, a root program, a chunk size), whether this
    is the offline plan, and a notice to show."""

    root_model: str
    sub_model: str
    options: dict[str, Any] = field(default_factory=dict)
    notice: str | None = None
    offline: bool = False

    @property
    def root_label(self) -> str | None:
        """`strategy search` or `root_code` when no root model writes the code, else None."""
        if self.options.get("root_code"):
            return "root_code"
        if self.options.get("strategy"):
            return f"strategy {self.options['strategy']}"
        return None

    def progress_line(self) -> str | None:
        """Says plainly, before any progress, that no root model wrote the code."""
        if self.root_label is None:
            return None
        return f"[rlm] {self.root_label}: no root model; sub-calls to {self.sub_model}"


def plan_run(
    settings: Any,
    model: str | None,
    sub_model: str | None,
    strategy: str | None,
    root_code: str | None,
    chunk_size_chosen: bool = False,
) -> RunPlan:
    """The plan of one execution from what the user chose (None: not chosen) and the settings.

    With no model and no sub-model chosen and no provider reachable, the offline plan. A local
    sub-model reads short chunks best, so it gets LOCAL_CHUNK_SIZE unless the user
    (`chunk_size_chosen`) or the environment (DEFAULT_CHUNK_SIZE) chose a chunk size.
    """
    from rlm_shared.strategies import LOCAL_CHUNK_SIZE
    from rlm_shared.strategies.offline import NOTICE, offline_plan
    from rlm_worker.engine.local_model import is_local

    options: dict[str, Any] = {}
    notice = None
    offline = None if model or sub_model else offline_plan(settings.default_model, settings.llm_api_base)
    if offline is not None:
        sub_model = offline.sub_model
        strategy = strategy or offline.strategy
        if not chunk_size_chosen:
            options["chunk_size"] = offline.chunk_size
        root = "your root program" if root_code else f"the built-in `{strategy}` strategy"
        notice = NOTICE.format(model=settings.default_model, local=offline.sub_model, root=root)
    root_model = model or settings.default_model
    sub = sub_model or settings.sub_model or root_model
    chunk_set = chunk_size_chosen or "default_chunk_size" in settings.model_fields_set
    if is_local(sub) and not chunk_set:
        options["chunk_size"] = LOCAL_CHUNK_SIZE  # a small local model reads short chunks best
    if strategy:
        options["strategy"] = strategy
    if root_code:
        options["root_code"] = root_code
    plan = RunPlan(root_model, sub, options, notice, offline is not None)
    if plan.root_label and not model:
        # No root model is ever called: the record must not name one.
        plan = RunPlan(f"({plan.root_label})", sub, options, notice, offline is not None)
    return plan
