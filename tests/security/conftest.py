"""Security suite fixtures: a worker environment holding secrets, and sandboxes started from it."""

from __future__ import annotations

import json
import os

import pytest

from rlm_worker.engine.types import CellResult
from rlm_worker.sandbox import SandboxConfig, make_sandbox_factory

SECRET = "sk-test-SECRET-123"
DB_SECRET = "postgresql://rlm:db-SECRET-456@db/rlm"

#: Small limits so resource attacks end quickly.
TEST_CONFIG = SandboxConfig(
    cell_cpu_seconds=1,
    cell_timeout_seconds=20,
    execution_cpu_seconds=120,
    memory_bytes=512 * 1024 * 1024,
    max_output_chars=100_000,
)


@pytest.fixture(scope="session", autouse=True)
def worker_secrets():
    """The worker's environment holds API keys and a database URL, as in production."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", SECRET)
        patch.setenv("DATABASE_URL", DB_SECRET)
        yield


@pytest.fixture(scope="session")
def factory(worker_secrets):
    return make_sandbox_factory(TEST_CONFIG)


@pytest.fixture(scope="module")
def shared_sandbox(factory):
    box = factory({"doc": "public context"}, {}, {"DEFAULT_CHUNK_SIZE": 100})
    yield box
    box.close()


class CountingHandler:
    """on_call that counts calls and answers 'ok' (or a fixed value)."""

    def __init__(self, value="ok"):
        self.count = 0
        self.value = value

    def __call__(self, fn, args):
        self.count += 1
        return self.value


def assert_no_leak(result: CellResult, variables: dict | None = None) -> None:
    for text in (
        result.stdout,
        result.stderr,
        result.error or "",
        result.final or "",
        result.limit_hit or "",
    ):
        assert SECRET not in text and "db-SECRET" not in text
    if variables is not None:
        dumped = json.dumps(variables)
        assert SECRET not in dumped and "db-SECRET" not in dumped


def assert_still_works(box) -> None:
    """The worker and the sandbox answer a normal cell correctly after an attack."""
    result = box.execute("print(1+1)", CountingHandler())
    assert result.stdout == "2\n", result
    assert result.error is None
    assert os.environ["OPENAI_API_KEY"] == SECRET  # the worker itself is untouched
