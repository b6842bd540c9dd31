"""The REPL's ranking functions run in the worker, under the execution's time limit and cancel, and
within a budget of their own (issue 30: `rank_by_meaning` of 2,000 passages ran 623 s with a 60 s
time limit, and 3 more minutes after a cancel).

Real engine, real sandbox, the real embedding model (all-MiniLM-L6-v2 on llama.cpp). The
passages are new to this process (a fresh marker in each), so none is answered from the cache:
ranking all of them would take far longer than any of these tests allows.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from rlm_worker.engine import embeddings, retrieval
from tests.engine.conftest import ScriptedModel

pytestmark = pytest.mark.skipif(not embeddings.available(), reason="the embedding model is not installed")

NEVER = ScriptedModel(lambda messages, model: "never called")


def _program(count: int, call: str = "rank_by_meaning") -> str:
    """Root code ranking `count` new passages; FINAL says whether the call finished or how it failed."""
    marker = uuid.uuid4().hex
    return (
        f"passages = ['{marker} entry ' + str(i) + ': the keeper logged the wind, the cargo and the sea' "
        f"for i in range({count})]\n"
        "try:\n"
        f"    found = {call}(passages, 'Who died on the voyage?', 3)\n"
        "    FINAL('finished')\n"
        "except Exception as exc:\n"
        "    FINAL('stopped: ' + str(exc))\n"
    )


@pytest.fixture(scope="module", autouse=True)
def warm_model():
    embeddings.embed(["the model is loaded before any clock starts"])


def test_ranking_stops_at_the_time_limit(run):
    began = time.monotonic()
    result, sink = run(NEVER, "ctx", root_code=_program(2_000), timeout_seconds=3)
    elapsed = time.monotonic() - began
    assert result.status == "timed_out", (result.status, result.error, result.final_answer)
    assert elapsed < 3 + 20, elapsed  # one batch of 16 passages past the limit, on a busy machine
    search = [n for n in sink.tree() if n.kind == "search"]
    assert search and search[0].status == "failed" and "time limit" in search[0].error


def test_ranking_stops_promptly_on_cancel(run):
    cancelled = threading.Event()
    fired: list[float] = []

    def cancel() -> None:
        fired.append(time.monotonic())
        cancelled.set()

    timer = threading.Timer(2.0, cancel)
    timer.start()
    try:
        result, _sink = run(NEVER, "ctx", root_code=_program(2_000), timeout_seconds=600, is_cancelled=cancelled.is_set)
    finally:
        timer.cancel()
    assert fired, "the ranking finished before the cancel: the test proves nothing"
    assert result.status == "cancelled", (result.status, result.error)
    # Seen between two batches of 16 passages, not after all 2,000.
    assert time.monotonic() - fired[0] < 20


def test_ranking_has_a_budget_of_its_own(run):
    """With 1 s of ranking time the call stops with a clear error; the execution goes on (the code
    catches it and answers), and a second call finds the budget spent."""
    program = _program(2_000) + (
        "\ntry:\n    rank_by_meaning(['one more'], 'q', 1)\n    second = 'ran'\n"
        "except Exception as exc:\n    second = str(exc)\n"
    )
    program = program.replace("    FINAL('stopped: ' + str(exc))\n", "    first = str(exc)\n") + "FINAL(first + ' | ' + second)\n"
    began = time.monotonic()
    result, _sink = run(NEVER, "ctx", root_code=program, timeout_seconds=600, max_ranking_seconds=1)
    assert time.monotonic() - began < 30
    assert result.status == "succeeded", (result.status, result.error)
    first, second = result.final_answer.split(" | ")
    assert first.startswith("rank_by_meaning stopped: the execution used its 1 s of ranking time"), first
    assert "max_ranking_seconds=1" in first and "max_ranking_seconds=1" in second, result.final_answer


def test_a_call_ranks_a_bounded_number_of_passages(run):
    result, _sink = run(NEVER, "ctx", root_code=_program(embeddings.MAX_PASSAGES_PER_CALL + 1))
    assert result.final_answer.startswith(
        f"stopped: rank_by_meaning ranks at most {embeddings.MAX_PASSAGES_PER_CALL:,} passages a call"
    ), result.final_answer


def test_bm25_ranking_obeys_the_ranking_budget(run):
    """rank_passages checks the same budget between its steps (tokenizing in slices, indexing)."""
    count = retrieval.STEP * 4
    result, _sink = run(
        NEVER, "ctx", root_code=_program(count, "rank_passages"), timeout_seconds=600, max_ranking_seconds=0.01
    )
    assert result.final_answer.startswith("stopped: rank_passages stopped: the execution used its 0.01 s"), (
        result.final_answer
    )
