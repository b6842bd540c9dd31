"""The engine's one metrics hook: a child agent refused a REPL by MAX_SANDBOXES_PER_EXECUTION is
reported to `on_guard` (the runner passes `metrics.guard_tripped`), and the run goes on."""

from __future__ import annotations

from rlm_worker.dispatchers import InProcessDispatcher
from rlm_worker.engine.loop import Engine, ExecutionRequest
from rlm_worker.engine.memory_sink import InMemoryTraceSink
from rlm_worker.engine.options import ExecutionOptions
from rlm_worker.engine.sandbox_slots import SlotPool
from rlm_worker.sandbox import SandboxConfig, make_sandbox_factory
from tests.engine.conftest import ScriptedModel, fence

TWO_CHILDREN = fence(
    "if context.startswith('child'):\n"
    "    FINAL('x')\n"
    "parts = rlm_query_batched(['branch', 'branch'], contexts=['child 1', 'child 2'])\n"
    "FINAL(''.join(parts))"
)


def test_children_refused_a_repl_are_reported_by_cap_name():
    model = ScriptedModel(lambda messages, model: TWO_CHILDREN, sub=lambda prompt: "y")
    sink = InMemoryTraceSink()
    reported: list[str] = []
    engine = Engine(
        model,
        InProcessDispatcher(model, sink),
        sink,
        make_sandbox_factory(SandboxConfig()),
        max_sandboxes_per_execution=1,  # the root's own REPL: no child gets one
        process_sandboxes=SlotPool(None, "MAX_SANDBOXES_PER_PROCESS"),
        on_guard=reported.append,
    )
    result = engine.run(
        ExecutionRequest(
            execution_id="caps",
            user_query="q",
            context="root",
            root_model="root-model",
            sub_model="sub-model",
            options=ExecutionOptions(max_recursion_depth=2, timeout_seconds=120),
        )
    )
    assert result.status == "succeeded", result.error
    assert result.final_answer == "yy"  # each child ran as one plain llm_query
    assert reported == ["max_sandboxes_per_execution", "max_sandboxes_per_execution"]
