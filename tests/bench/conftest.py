"""One small benchmark stack for the smoke tests: real processes, tiny sizes, short model latency."""

from __future__ import annotations

import pytest

from bench.stack import BenchStack


@pytest.fixture(scope="package")
def bench_stack():
    stack = BenchStack(
        latency=0.02, llm_workers=1, llm_threads=8, root_threads=4, web_workers=1, redis_dbs=(10, 11)
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
