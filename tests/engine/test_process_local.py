"""ProcessLocal: one object per process; a forked child (a Celery prefork child) makes its own."""

from __future__ import annotations

import multiprocessing
import os
import threading

from rlm_worker.engine.process_local import ProcessLocal


class _Owner:
    """Stands for an object that owns a thread: what a forked child must not reuse."""

    def __init__(self) -> None:
        self.pid = os.getpid()


def test_the_object_is_made_once_per_process_even_when_threads_race():
    made: list[_Owner] = []
    local = ProcessLocal(lambda: made.append(_Owner()) or made[-1])
    assert local.peek() is None
    seen: list[_Owner] = []
    threads = [threading.Thread(target=lambda: seen.append(local.get())) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1 and all(owner is made[0] for owner in seen) and local.peek() is made[0]


def _in_child(local: ProcessLocal[_Owner], queue) -> None:
    before = local.peek()
    made = local.get()
    queue.put((before is None, made.pid == os.getpid(), local.get() is made))


def test_a_forked_child_makes_its_own_object():
    local = ProcessLocal(_Owner)
    parent_object = local.get()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_in_child, args=(local, queue))
    child.start()
    try:
        assert queue.get(timeout=30) == (True, True, True)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    assert local.get() is parent_object  # the parent keeps its own
