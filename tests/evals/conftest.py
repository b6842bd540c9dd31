"""Fixtures of the eval tests: the `rlm` command's environment (tests/cli), a scripted model that
finds the planted access codes, and the root program the tiny suite runs under."""

from __future__ import annotations

import re

import pytest

from tests.cli.conftest import cli_env  # noqa: F401  (the fixture, shared)
from tests.support.scripted_model import user_text

PLANTED = re.compile(r"secret access code for [A-Z][\w ]+? is ([A-Z]{2}-\d{4})")

#: Overlapping chunks, so a planted sentence is whole in at least one; each asked once.
CHUNK_PROGRAM = """\
chunks = [context[i:i + 3200] for i in range(0, len(context), 3000)]
replies = llm_query_batched(["Question: " + QUESTION + "\\n\\n" + c for c in chunks])
found = sorted(set(code for r in replies if r != "NONE" for code in r.split(", ")))
FINAL(", ".join(found) if found else "NONE")
"""


def code_finder(request: dict) -> str:
    """The scripted model: the access codes planted in the prompt, comma-separated, or NONE. It
    knows nothing of topics or users, so the aggregation and pairs items score 0."""
    codes = PLANTED.findall(user_text(request))
    return ", ".join(codes) if codes else "NONE"


@pytest.fixture()
def finder(scripted):
    scripted.responder = code_finder
    return scripted


@pytest.fixture()
def chunk_program(tmp_path):
    path = tmp_path / "chunks.py"
    path.write_text(CHUNK_PROGRAM, encoding="utf-8")
    return path
