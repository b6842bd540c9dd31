"""A real language model in the suite: the `local` provider through litellm, and the built-in
strategies reading real text with it in the real sandbox."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bench.needle import NEEDLES, build_cases
from rlm_shared.strategies import LOCAL_CHUNK_SIZE, get_strategy
from rlm_shared.strategies.common import EXTRACT_PROMPT, FIND_PROMPT, paragraph_passages
from rlm_worker.engine import local_model
from rlm_worker.engine.loop import ExecutionRequest
from rlm_worker.engine.options import ExecutionOptions
from tests.local_model.conftest import MODEL

SAMPLE_TEXT = """helium
Symbol: He
Atomic number: 2
Atomic weight: 4.0026
Colourless, odourless gaseous nonmetallic element. Discovered in the solar spectrum in 1868 by Lockyer.
"""


def test_a_local_model_call_goes_through_litellm_with_tokens_and_zero_cost(local_client):
    messages = [
        {"role": "user", "content": EXTRACT_PROMPT.format(question="Who found helium?", text=SAMPLE_TEXT)}
    ]
    first = local_client.complete(MODEL, messages)
    again = local_client.complete(MODEL, messages)
    assert first.text.strip() and first.text == again.text  # temperature 0, fixed seed
    assert first.model == MODEL
    assert first.input_tokens > 20 and first.output_tokens > 0
    assert first.cost_usd == 0.0 and first.cost_known
    assert local_model.server().api_base.startswith("http://127.0.0.1:")


def test_a_missing_model_file_says_how_to_install_one(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCAL_MODEL_PATH", str(tmp_path / "absent.gguf"))
    with pytest.raises(local_model.LocalModelUnavailable, match="is not a file"):
        local_model.model_path()
    monkeypatch.delenv("LOCAL_MODEL_PATH")
    assert local_model.model_path().endswith(local_model.SMOLLM2_FILE)


def run_strategy(local_engine, strategy: str, question: str, context: str, run_id: str):
    engine, sink = local_engine
    request = ExecutionRequest(
        execution_id=run_id,
        user_query=question,
        context=context,
        root_model="(none)",
        sub_model=MODEL,
        options=ExecutionOptions(chunk_size=LOCAL_CHUNK_SIZE, timeout_seconds=120),
        root_code=get_strategy(strategy),
        root_code_label=f"strategy {strategy}",
    )
    result = engine.run(request)
    nodes = [n for n in sink.nodes.values() if n.execution_id == run_id]
    return result, nodes


def test_find_reads_every_chunk_and_keeps_only_what_the_text_backs(local_engine):
    vault = NEEDLES[0]
    present, absent = build_cases(4_000, seed=11, needles=(vault,))[:2]  # the Elements database

    found, nodes = run_strategy(local_engine, "find", vault.question, present.context, "find-present")
    assert found.status == "succeeded", found.error
    assert vault.answer in found.final_answer
    calls = [n for n in nodes if n.kind == "llm_call"]
    assert len(calls) == found.sub_calls >= 4 and all(n.model == MODEL for n in calls)
    assert found.input_tokens > 1000 and found.cost_usd == 0.0
    iteration = next(n for n in nodes if n.kind == "iteration")
    assert iteration.model == "(strategy find: no root model)"

    nothing, _ = run_strategy(local_engine, "find", vault.question, absent.context, "find-absent")
    assert nothing.status == "succeeded" and nothing.final_answer == "NONE"


def ship_log_days(first: str, last: str) -> str:
    """The entries of the bundled ship log from the day starting `first` to the one starting `last`."""
    text = (Path(__file__).resolve().parents[2] / "samples" / "northern_tern_log.txt").read_text()
    entries = text.split("\n\n")
    start = next(i for i, e in enumerate(entries) if e.startswith(first))
    end = next(i for i, e in enumerate(entries) if e.startswith(last))
    return "\n\n".join(entries[start : end + 1])


def test_find_names_the_seaman_the_ship_log_says_was_killed(local_engine):
    """The README's find example, on the week around the death: one sub-call per log entry, and
    the model's reply ("John Pellow") kept with its entry's date; the injured seaman of the next
    day (R. Tonkin) is not an answer."""
    week = ship_log_days("Tuesday 29 March 1887", "Thursday 7 April 1887")
    found, nodes = run_strategy(local_engine, "find", "Which seaman was killed?", week, "find-seaman")
    assert found.status == "succeeded", found.error
    assert found.final_answer == "Sunday 3 April 1887: John Pellow"
    assert found.sub_calls == len(paragraph_passages(week, LOCAL_CHUNK_SIZE)) >= 5


def test_the_time_limit_stops_find_over_the_whole_log_in_time(local_engine):
    """`find` sends one call per paragraph (79 on the ship log): a time limit ends the execution
    a decode step after it passes, the waiting calls dropped, not after the whole log is read."""
    engine, sink = local_engine
    log = (Path(__file__).resolve().parents[2] / "samples" / "northern_tern_log.txt").read_text()
    request = ExecutionRequest(
        execution_id="find-time-limit",
        user_query="Which seaman was killed?",
        context=log,
        root_model="(none)",
        sub_model=MODEL,
        options=ExecutionOptions(chunk_size=LOCAL_CHUNK_SIZE, timeout_seconds=4),
        root_code=get_strategy("find"),
        root_code_label="strategy find",
    )
    started = time.monotonic()
    result = engine.run(request)
    took = time.monotonic() - started
    assert result.status == "timed_out", (result.status, result.error)
    assert took < 4 + 6, took  # the sandbox start, then one decode step of each busy slot at most
    calls = [n for n in sink.nodes.values() if n.execution_id == "find-time-limit" and n.kind == "llm_call"]
    answered = [n for n in calls if n.status == "succeeded"]
    assert len(answered) < len(paragraph_passages(log, LOCAL_CHUNK_SIZE))
    assert {n.status for n in calls} - {"succeeded"} == {"cancelled"}


def test_drafting_from_the_prompt_changes_no_reply(local_client):
    """Speculative decoding with drafts from the prompt (on by default) writes the same reply as
    plain decoding, and a reply that copies the text comes mostly from accepted drafts. The
    passage is one the model answers by copying its first line (what `find` pays most for)."""
    drafting = local_model.server()
    assert drafting.settings.draft_tokens > 0
    plain = local_model.LocalModelServer(replace(drafting.settings, draft_tokens=0))
    log = (Path(__file__).resolve().parents[2] / "samples" / "northern_tern_log.txt").read_text()
    passage = next(p for p in paragraph_passages(log, LOCAL_CHUNK_SIZE) if "Tuesday 15 March" in p)
    prompt = FIND_PROMPT.format(question="Which seaman was killed?", text=passage)
    body = {"messages": [{"role": "user", "content": prompt}], "temperature": 0.0, "seed": local_model.SEED}
    with_drafts = drafting._server.handle_chat_completions(body)
    without = plain._server.handle_chat_completions(body)
    reply = with_drafts["choices"][0]["message"]["content"]
    assert reply == without["choices"][0]["message"]["content"]
    assert reply.startswith("Tuesday 1") and with_drafts["usage"]["completion_tokens"] >= 32  # a long copy
    assert without["timings"].get("draft_n", 0) == 0
    assert with_drafts["timings"]["draft_n_accepted"] * 2 > with_drafts["usage"]["completion_tokens"]


def test_a_local_call_on_the_lean_path_never_imports_litellm():
    """litellm takes seconds to import on a small machine: an offline `rlm run` must not pay for it."""
    import subprocess
    import sys

    code = (
        "import asyncio, sys\n"
        "from rlm_worker.services import model_client\n"
        "client = model_client()\n"
        "reply = asyncio.run(client.acomplete('local/smollm2', [{'role': 'user', 'content': 'Say hi.'}]))\n"
        "assert reply.output_tokens > 0 and reply.cost_usd == 0.0, reply\n"
        "print('litellm' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "LLM_API_BASE")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
