"""Fixtures of the eval tests: the `rlm` command's environment (tests/cli), the scripted model
set to find the planted access codes, and the root program of the tiny suite as a file."""

from __future__ import annotations

import pytest

from tests.cli.conftest import cli_env  # noqa: F401  (the fixture, shared)
from tests.cli.test_serve import served  # noqa: F401  (`rlm serve` on a free port, shared)
from tests.evals.scripts import CHUNK_PROGRAM, code_finder


@pytest.fixture()
def finder(scripted):
    scripted.responder = code_finder
    return scripted


@pytest.fixture()
def chunk_program(tmp_path):
    path = tmp_path / "chunks.py"
    path.write_text(CHUNK_PROGRAM, encoding="utf-8")
    return path
