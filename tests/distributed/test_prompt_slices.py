"""Prompts that quote the stored context travel as (context id, start, length) with the text
around them, and the llm worker rebuilds exactly the prompt the program made."""

from __future__ import annotations

import json
import random

from bench.workload import make_context
from rlm_shared.prompt_slices import MAX_MISSES, MIN_SLICE_CHARS, REF_KEY, ContextTexts, SliceFinder
from rlm_worker.dispatchers import CeleryDispatcher
from rlm_worker.engine.types import LLMCall
from tests.distributed.test_broker_messages import BROKER_DB, _app
from tests.support.services import flushed_redis

CONTEXT = make_context(400_000, salt="slices")


def _round_trip(finder: SliceFinder, prompt: str) -> dict:
    wired = finder.wire({"node_id": "n", "prompt": prompt})
    loads: list[str] = []
    texts = ContextTexts(lambda cid: loads.append(cid) or CONTEXT)
    assert texts.resolve(wired)["prompt"] == prompt
    return wired


def test_a_fan_outs_chunks_travel_as_references_and_come_back_whole():
    finder = SliceFinder("ctx1", CONTEXT)
    size = 4_000
    for i in range(0, len(CONTEXT), size):
        prompt = "How many chunks is this?\n\n" + CONTEXT[i : i + size] + "\nAnswer:"
        wired = _round_trip(finder, prompt)
        if len(CONTEXT[i : i + size]) >= MIN_SLICE_CHARS:
            context_id, head, start, length, tail = wired[REF_KEY]
            assert wired["prompt"] is None and context_id == "ctx1"
            # the whole chunk is referenced (the match may take in a neighbouring "\n" of the text)
            assert start <= i and start + length >= i + len(CONTEXT[i : i + size])
            assert len(head) + len(tail) <= len("How many chunks is this?\n\n\nAnswer:")


def test_prompts_that_quote_nothing_or_little_travel_whole_and_the_finder_gives_up():
    finder = SliceFinder("ctx1", CONTEXT)
    assert _round_trip(finder, "short " + CONTEXT[:100]) == {
        "node_id": "n",
        "prompt": "short " + CONTEXT[:100],
    }
    rng = random.Random(7)
    for _ in range(MAX_MISSES):
        prompt = "".join(rng.choice("abcdefgh ") for _ in range(3_000))
        assert REF_KEY not in _round_trip(finder, prompt)
    assert finder.split("x" + CONTEXT[1000:5000]) is None  # stopped looking after that many misses


def test_random_slices_anywhere_rebuild_exactly():
    finder = SliceFinder("ctx1", CONTEXT)
    rng = random.Random(3)
    for _ in range(200):
        start, length = rng.randrange(len(CONTEXT)), rng.randrange(6_000)
        prompt = (
            rng.choice(["", "Q: ", "Line 0000"])
            + CONTEXT[start : start + length]
            + rng.choice(["", "?", "Line"])
        )
        _round_trip(finder, prompt)


def test_the_worker_reads_a_context_once_for_many_prompts():
    loads: list[str] = []
    texts = ContextTexts(lambda cid: loads.append(cid) or CONTEXT, keep=1)
    finder = SliceFinder("ctx1", CONTEXT)
    wired = [finder.wire({"prompt": "q\n" + CONTEXT[i : i + 2_000]}) for i in range(0, 40_000, 2_000)]
    assert [texts.resolve(w)["prompt"] for w in wired] == [
        "q\n" + CONTEXT[i : i + 2_000] for i in range(0, 40_000, 2_000)
    ]
    assert loads == ["ctx1"]


def test_the_dispatcher_sends_references_on_the_broker():
    app = _app()
    batch = [
        LLMCall(
            "exec1",
            f"node{i}",
            "parent",
            f"000000.{i:06d}",
            1,
            i,
            "openai/m",
            "Q\n" + CONTEXT[i * 5000 : (i + 1) * 5000],
        )
        for i in range(3)
    ]
    dispatcher = CeleryDispatcher(app)
    dispatcher.ship_slices_of("ctx1", CONTEXT)
    with flushed_redis(BROKER_DB) as client:
        dispatcher._send(0, batch)
        raw = client.lindex("rlm.llm", 0)
        app.close()
    assert len(raw) < 3_000  # three prompts of 5,000 characters
    args, _, _ = json.loads(json.loads(raw)["body"])
    texts = ContextTexts(lambda cid: CONTEXT)
    assert [LLMCall.from_dict(texts.resolve(c)) for c in args[0]] == batch
