"""Issue #17 part 3. Attack: a model whose code calls `rlm_query_batched` at every level (4 branches,
depth 3: 1 + 4 + 16 + 64 agents; 60 REPL processes were alive at once, 751 MB, before the cap).
Outcome that must hold: live REPL processes never exceed MAX_SANDBOXES_PER_EXECUTION /
MAX_SANDBOXES_PER_PROCESS, nothing deadlocks or crashes, and the trace says which children ran
without a REPL. Live processes are counted twice, for real: by the sandbox
module's own counter (start to reaping) and by sampling this process's children in /proc.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlm_worker.dispatchers import InProcessDispatcher
from rlm_worker.engine.loop import Engine, ExecutionRequest
from rlm_worker.engine.memory_sink import InMemoryTraceSink
from rlm_worker.engine.options import ExecutionOptions
from rlm_worker.engine.sandbox_slots import SlotPool
from rlm_worker.sandbox.process import live_processes
from tests.engine.conftest import ScriptedModel, fence

#: Every agent: at the last level answer "x"; above it, ask 4 children one level down.
TREE_CODE = fence(
    "level = int(context.split(':')[0])\n"
    "if level >= LAST:\n"
    "    FINAL('x')\n"
    "parts = rlm_query_batched(['branch'] * BRANCHES, contexts=[f'{level + 1}:{i}' for i in range(BRANCHES)])\n"
    "FINAL(''.join(parts))"
)


def tree_root(branches: int, last: int, turn_seconds: float = 0.0):
    code = TREE_CODE.replace("LAST", str(last)).replace("BRANCHES", str(branches))

    def root(messages, _model):
        if turn_seconds:
            time.sleep(turn_seconds)  # the model's latency: keeps every REPL of the tree alive a while
        return code

    return root


class ChildSampler(threading.Thread):
    """Counts this process's live sandbox children in /proc, the way `ps` would see them."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.baseline = self.count()
        self.peak = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.01):
            self.peak = max(self.peak, self.count() - self.baseline)

    @staticmethod
    def count() -> int:
        me = str(os.getpid())
        count = 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat", "rb") as handle:
                    stat = handle.read()
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    cmdline = handle.read()
            except OSError:
                continue
            fields = stat[stat.rindex(b")") + 2 :].split()
            if fields[1].decode() == me and fields[0] != b"Z" and b"rlm_worker.sandbox.child" in cmdline:
                count += 1
        return count

    def __enter__(self) -> ChildSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.join()


def engine_for(model, sandbox_factory, per_execution, process_pool):
    sink = InMemoryTraceSink()
    engine = Engine(
        model,
        InProcessDispatcher(model, sink),
        sink,
        sandbox_factory,
        max_sandboxes_per_execution=per_execution,
        process_sandboxes=process_pool,
    )
    return engine, sink


def request(execution_id: str, depth: int) -> ExecutionRequest:
    return ExecutionRequest(
        execution_id=execution_id,
        user_query="count the leaves",
        context="0:root",
        root_model="root-model",
        sub_model="sub-model",
        options=ExecutionOptions(max_recursion_depth=depth, timeout_seconds=240),
    )


@pytest.fixture(scope="module")
def sandbox_factory(factory):
    return factory


class Counted:
    """The sandbox module's count of live REPLs, above what was alive before the test (another
    module's shared sandbox, say)."""

    def __init__(self) -> None:
        self.baseline = live_processes.count
        live_processes.reset_peak()

    @property
    def peak(self) -> int:
        return live_processes.peak - self.baseline


@pytest.fixture()
def counted():
    counter = Counted()
    yield counter
    assert live_processes.count == counter.baseline, "every REPL process of the test was reaped"


def test_four_branches_to_depth_three_stay_under_the_execution_cap(sandbox_factory, counted):
    model = ScriptedModel(tree_root(branches=4, last=3, turn_seconds=0.05), sub=lambda prompt: "x")
    engine, sink = engine_for(model, sandbox_factory, per_execution=4, process_pool=SlotPool(None, "p"))
    with ChildSampler() as sampler:
        result = engine.run(request("tree", depth=3))
    assert result.status == "succeeded", result.error
    assert set(result.final_answer) == {"x"}
    assert counted.peak <= 4
    assert sampler.peak <= 4
    assert counted.peak == 4  # the cap is what bounded it (1 + 4 + 16 + 64 agents wanted a REPL)
    children = [n for n in sink.tree() if n.kind == "child_rlm"]
    without_repl = [n for n in children if n.stdout and "no sandbox slot free" in n.stdout]
    assert without_repl, "some children ran as plain llm_query"
    assert all("MAX_SANDBOXES_PER_EXECUTION=4" in n.stdout for n in without_repl)
    assert all(n.status == "succeeded" and n.response == "x" for n in without_repl)
    by_parent = {n.parent_id for n in sink.tree() if n.kind == "llm_call"}
    assert {n.id for n in without_repl} <= by_parent  # each one's leaf call hangs under it
    iterations = [n for n in sink.tree() if n.kind == "iteration"]
    assert len(iterations) <= 1 + len(children) - len(without_repl)


def test_the_uncapped_tree_does_exceed_that_cap(sandbox_factory, counted):
    """Control: the counters see more than 4 live REPLs when nothing caps them (3 x depth 2)."""
    model = ScriptedModel(tree_root(branches=3, last=2, turn_seconds=0.3), sub=lambda prompt: "x")
    engine, _ = engine_for(model, sandbox_factory, per_execution=None, process_pool=SlotPool(None, "p"))
    with ChildSampler() as sampler:
        result = engine.run(request("uncapped", depth=2))
    assert result.status == "succeeded", result.error
    assert result.final_answer == "x" * 9
    assert counted.peak > 4
    assert sampler.peak > 4


def test_the_process_cap_holds_across_executions_and_roots_wait_without_deadlock(sandbox_factory, counted):
    """Three executions share a process pool of 2: roots wait their turn, children run without a
    REPL when none is free, and all three finish."""
    pool = SlotPool(2, "MAX_SANDBOXES_PER_PROCESS")
    model = ScriptedModel(tree_root(branches=2, last=2, turn_seconds=0.05), sub=lambda prompt: "x")
    runs = [engine_for(model, sandbox_factory, per_execution=8, process_pool=pool) for _ in range(3)]
    with ChildSampler() as sampler, ThreadPoolExecutor(3) as threads:
        futures = [
            threads.submit(engine.run, request(f"e{i}", depth=2)) for i, (engine, _) in enumerate(runs)
        ]
        results = [f.result(timeout=200) for f in futures]
    assert [r.status for r in results] == ["succeeded"] * 3, [r.error for r in results]
    assert counted.peak <= 2 and sampler.peak <= 2 and pool.peak <= 2
    assert pool.held == 0
    notes = [n.stdout for _, sink in runs for n in sink.tree() if n.kind == "child_rlm" and n.stdout]
    assert notes and all("MAX_SANDBOXES_PER_PROCESS=2" in note or "PER_EXECUTION" in note for note in notes)


def test_a_root_waiting_for_a_slot_stops_at_its_time_limit(sandbox_factory, counted):
    pool = SlotPool(1, "MAX_SANDBOXES_PER_PROCESS")
    assert pool.try_acquire()  # another execution holds the only slot
    model = ScriptedModel(lambda m, _: fence("FINAL('never')"))
    engine, _ = engine_for(model, sandbox_factory, per_execution=8, process_pool=pool)
    started = time.monotonic()
    result = engine.run(
        ExecutionRequest("waits", "q", "ctx", "root-model", "sub-model", ExecutionOptions(timeout_seconds=1))
    )
    assert time.monotonic() - started < 5
    assert result.status in ("failed", "timed_out")
    assert "MAX_SANDBOXES_PER_PROCESS=1" in result.error or "timeout" in result.error
    assert counted.peak == 0
    pool.release()
