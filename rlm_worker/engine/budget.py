"""Guards shared by every agent of one execution tree: sub-calls, tokens, cost, time, cancellation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rlm_worker.engine.options import ExecutionOptions
from rlm_worker.engine.subcall_gate import SubcallGate


class GuardTripped(Exception):
    """An execution-wide limit was crossed; `guard` names it (e.g. `max_cost_usd`)."""

    def __init__(self, guard: str, message: str) -> None:
        super().__init__(message)
        self.guard = guard


class Budget:
    """Thread-safe counters checked before every model call and sub-call."""

    def __init__(
        self,
        options: ExecutionOptions,
        is_cancelled: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self._clock = clock
        self._is_cancelled = is_cancelled or (lambda: False)
        self.deadline = clock() + options.timeout_seconds
        self._lock = threading.Lock()
        self.sub_calls = 0
        self.tool_calls = 0
        self.model_calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self.cost_unknown = False
        self.ranking_seconds = 0.0  # worker time spent ranking passages for the REPL
        self.tripped: GuardTripped | None = None
        #: `max_concurrent_subcalls`: every leaf dispatch of the tree passes this one gate.
        self.subcall_gate = SubcallGate(options.max_concurrent_subcalls)

    def stopped(self) -> bool:
        """True once a guard tripped (or trips now): a wait for a sub-call slot ends there."""
        try:
            self.check()
        except GuardTripped:
            return True
        return False

    def remaining_seconds(self) -> float:
        return max(0.0, self.deadline - self._clock())

    def check(self) -> None:
        """Raise GuardTripped if any limit is crossed (and remember the first one)."""
        if self.tripped:
            raise self.tripped
        o = self.options
        if self._is_cancelled():
            self._trip("cancelled", "the execution was cancelled")
        if self._clock() >= self.deadline:
            self._trip("timeout_seconds", f"the execution exceeded its {o.timeout_seconds:g} s time limit")
        if self.input_tokens + self.output_tokens > o.max_total_tokens:
            self._trip("max_total_tokens", f"the execution used more than {o.max_total_tokens:,} tokens")
        if self.cost_usd > o.max_cost_usd:
            self._trip("max_cost_usd", f"the execution cost more than ${o.max_cost_usd:g}")

    def reserve_sub_calls(self, count: int) -> None:
        self.check()
        with self._lock:
            if self.sub_calls + count > self.options.max_sub_calls:
                self._trip(
                    "max_sub_calls",
                    f"the execution may make at most {self.options.max_sub_calls:,} sub-calls",
                )
            self.sub_calls += count

    def reserve_tool_call(self) -> None:
        """Count one custom tool call against `max_tool_calls` (engine/tools.py)."""
        self.check()
        with self._lock:
            if self.tool_calls + 1 > self.options.max_tool_calls:
                self._trip(
                    "max_tool_calls",
                    f"the execution may make at most {self.options.max_tool_calls:,} tool calls",
                )
            self.tool_calls += 1

    def ranking_seconds_left(self) -> float:
        """What is left of `max_ranking_seconds` (the REPL's ranking functions run in the worker)."""
        with self._lock:
            return self.options.max_ranking_seconds - self.ranking_seconds

    def spend_ranking(self, seconds: float) -> None:
        with self._lock:
            self.ranking_seconds += seconds

    def add_usage(
        self, input_tokens: int, output_tokens: int, cost_usd: float, cost_known: bool = True
    ) -> None:
        with self._lock:
            self.model_calls += 1
            self.input_tokens += input_tokens
            self.output_tokens += output_tokens
            self.cost_usd += cost_usd
            self.cost_unknown = self.cost_unknown or not cost_known

    def _trip(self, guard: str, message: str) -> None:
        if self.tripped is None:
            self.tripped = GuardTripped(guard, message)
        raise self.tripped
