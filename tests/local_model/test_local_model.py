"""A real language model in the suite: the `local` provider through litellm, and the built-in
strategies reading real text with it in the real sandbox."""

from __future__ import annotations

import os

import pytest

from bench.needle import NEEDLES, build_cases
from rlm_shared.strategies import LOCAL_CHUNK_SIZE, get_strategy
from rlm_shared.strategies.common import EXTRACT_PROMPT
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
