"""One object per process, made on first use: what a forked child inherits is not reused.

A Celery prefork child starts with a copy of its parent's memory but none of its threads, so an
object that owns a thread (an event loop, a pub/sub listener) must be made again in the child.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ProcessLocal(Generic[T]):
    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._value: T | None = None
        self._pid: int | None = None
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()  # the parent may have held it while forking
        self._value = self._pid = None

    def get(self) -> T:
        """This process's object, made now if it has none (the pid check covers a missed fork hook)."""
        value = self._value
        if value is not None and self._pid == os.getpid():
            return value
        with self._lock:
            if self._value is None or self._pid != os.getpid():
                self._value, self._pid = self._make(), os.getpid()
            return self._value

    def peek(self) -> T | None:
        """This process's object if it was made, without making it."""
        return self._value if self._pid == os.getpid() else None
