"""Caps on live REPL processes: per execution and per worker process, reached without deadlock.

Why: every `rlm_query` child runs its own REPL process, and recursion multiplies them (4 branches
x depth 3 ran 60 at once from one request). Each agent holds one slot for as long as its REPL
lives. The rule that keeps this deadlock-free (argued in docs/architecture.md): only a root waits
for a slot; a child never waits. A child that finds no free slot is answered by one plain
`llm_query` instead, which needs no REPL. So the holders of slots never wait on slots, and a
waiting root only waits for other executions' agents to finish, which they do without waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


class SlotPool:
    """A counting semaphore that also says how many are held and the most ever held at once."""

    def __init__(self, limit: int | None, name: str) -> None:
        self.limit = limit
        self.name = name
        self._held = 0
        self.peak = 0
        self._free = threading.Condition()

    @property
    def held(self) -> int:
        return self._held

    def try_acquire(self) -> bool:
        with self._free:
            return self._take()

    def acquire(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a slot."""
        deadline = time.monotonic() + timeout
        with self._free:
            while not self._take():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._free.wait(remaining)
            return True

    def release(self) -> None:
        with self._free:
            self._held -= 1
            self._free.notify()

    def _take(self) -> bool:
        if self.limit is not None and self._held >= self.limit:
            return False
        self._held += 1
        self.peak = max(self.peak, self._held)
        return True


@dataclass
class Slot:
    """One agent's right to a live REPL: one slot of its execution and one of its process."""

    execution: SlotPool
    process: SlotPool
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.process.release()
            self.execution.release()


class SandboxSlots:
    """The slots of one execution, drawn from the worker process's shared pool."""

    #: How often a waiting root looks at its stop checks (cancellation, time limit).
    WAIT_SLICE_SECONDS = 0.25

    def __init__(self, per_execution: int | None, process: SlotPool) -> None:
        self.execution = SlotPool(per_execution, "MAX_SANDBOXES_PER_EXECUTION")
        self.process = process

    @classmethod
    def unlimited(cls) -> SandboxSlots:
        return cls(None, SlotPool(None, "MAX_SANDBOXES_PER_PROCESS"))

    def try_take(self) -> Slot | None:
        """A slot now, or None (a child then runs without a REPL)."""
        if not self.execution.try_acquire():
            return None
        if not self.process.try_acquire():
            self.execution.release()
            return None
        return Slot(self.execution, self.process)

    def wait_for(self, remaining: Callable[[], float], check: Callable[[], None]) -> Slot | None:
        """A root's slot: wait for the process pool while `remaining()` > 0, calling `check()`
        (which raises to stop) between slices. None when the time ran out."""
        if not self.execution.try_acquire():  # the root is its execution's first agent: never full
            return None
        try:
            while True:
                check()
                left = remaining()
                if left <= 0:
                    self.execution.release()
                    return None
                if self.process.acquire(min(left, self.WAIT_SLICE_SECONDS)):
                    return Slot(self.execution, self.process)
        except BaseException:
            self.execution.release()
            raise

    def full_pool(self) -> SlotPool:
        """The pool that refused the last `try_take` (for the trace's explanation)."""
        limit = self.execution.limit
        if limit is not None and self.execution.held >= limit:
            return self.execution
        return self.process

    def describe_refusal(self) -> str:
        pool = self.full_pool()
        return f"{pool.held} sandboxes alive, {pool.name}={pool.limit}"
