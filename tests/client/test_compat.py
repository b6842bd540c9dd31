"""`RLM(...).completion(...)`, shaped like the reference implementation's, over a server and embedded."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from rlm_client import RLM, ExecutionFailed
from rlm_client.compat import execution_options, litellm_model
from tests.client.conftest import CONTEXT, QUESTION
from tests.client.test_client import endless_loop
from tests.support.services import TEST_SECRET

SCRIPTED = {"model_name": "scripted-root", "api_key": "ignored: the server has its own"}


def test_reference_call_against_a_server(api_url, scripted):
    rlm = RLM(
        backend="openai",
        backend_kwargs=SCRIPTED,
        other_backends=["openai"],
        other_backend_kwargs=[{"model_name": "scripted-sub"}],
        max_iterations=5,
        max_budget=1.0,
        verbose=True,  # accepted and ignored, as the docs say
        base_url=api_url,
    )
    result = rlm.completion(CONTEXT, root_prompt=QUESTION)
    assert result.response == "QX-4417" and result.root_model == "openai/scripted-root"
    assert result.status == "succeeded" and result.answer_found is True and result.offline is False
    usage = result.usage_summary.model_usage_summaries
    assert set(usage) == {"openai/scripted-root", "openai/scripted-sub"}
    assert usage["openai/scripted-root"].total_calls >= 1 and usage["openai/scripted-sub"].total_calls >= 1
    assert result.usage_summary.total_cost == pytest.approx(result.execution.total_cost_usd)
    assert result.usage_summary.total_input_tokens == result.execution.total_input_tokens
    options = result.metadata["options"]
    assert options["max_iterations"] == 5 and options["max_cost_usd"] == 1.0
    assert result.execution_time > 0 and result.prompt == CONTEXT

    again = rlm.completion(QUESTION, context=CONTEXT)  # our order: the question, then the input
    assert again.response == "QX-4417" and again.execution_id != result.execution_id
    rlm.close()


def test_persistent_keeps_one_session(api_url, scripted):
    rlm = RLM(backend_kwargs=SCRIPTED, persistent=True, base_url=api_url)
    first = rlm.completion(CONTEXT, root_prompt=QUESTION)
    second = rlm.completion(CONTEXT, root_prompt=QUESTION)
    assert first.execution.session_id and first.execution.session_id == second.execution.session_id


def test_a_failed_execution_raises_with_its_record(api_url, scripted):
    scripted.responder, scripted.latency = endless_loop, 0.05
    rlm = RLM(backend_kwargs=SCRIPTED, max_timeout=1.5, base_url=api_url)
    with pytest.raises(ExecutionFailed) as caught:
        rlm.completion("c", root_prompt="loop")
    completion = caught.value.completion
    assert completion.status in ("timed_out", "failed") and completion.error
    assert completion.answer_found is None


def test_parameters_map_or_are_refused():
    assert litellm_model("openai", {"model_name": "gpt-4o"}) == "openai/gpt-4o"
    assert (
        litellm_model("anthropic", {"model_name": "claude-3-5-haiku-latest"})
        == "anthropic/claude-3-5-haiku-latest"
    )
    assert litellm_model("openrouter", {"model_name": "openai/gpt-4o"}) == "openrouter/openai/gpt-4o"
    assert litellm_model("litellm", {"model_name": "gemini/gemini-2.0-flash"}) == "gemini/gemini-2.0-flash"
    assert litellm_model("openai", {}) is None  # the server's DEFAULT_MODEL
    assert execution_options(1, 10, 0.5, 60, 1000) == {
        "max_recursion_depth": 0,
        "max_iterations": 10,
        "max_cost_usd": 0.5,
        "timeout_seconds": 60,
        "max_total_tokens": 1000,
    }
    with pytest.raises(ValueError, match="portkey"):
        RLM(backend="portkey", base_url="http://127.0.0.1:9")
    with pytest.raises(TypeError, match="custom_tools"):
        RLM(custom_tools={"f": print}, base_url="http://127.0.0.1:9")
    with pytest.raises(TypeError, match="no_such_option"):
        RLM(no_such_option=1, base_url="http://127.0.0.1:9")


EMBEDDED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from rlm_client import RLM

    rlm = RLM(backend="openai", backend_kwargs={"model_name": "scripted-root"})
    result = rlm.completion(open(sys.argv[1]).read(), root_prompt=sys.argv[2])
    print(json.dumps({"response": result.response, "id": result.execution_id, "status": result.status,
                      "models": sorted(result.usage_summary.model_usage_summaries)}))
    """
)


def test_embedded_in_process_with_sqlite(tmp_path, scripted):
    """No server: the same call runs in this process, as `rlm run` does, into the user's SQLite."""
    source = tmp_path / "log.txt"
    source.write_text(CONTEXT, encoding="utf-8")
    env = {
        **os.environ,
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "LLM_API_BASE": scripted.url,
        "LLM_API_KEY": "scripted",
        "SUB_MODEL": "openai/scripted-sub",
        "OPENAI_API_KEY": TEST_SECRET,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "API_TOKENS": "a-token-the-embedded-app-must-not-ask-for",
    }
    for name in ("DATABASE_URL", "DISPATCH", "CELERY_BROKER_URL", "RLM_API_URL", "RLM_API_TOKEN"):
        env.pop(name, None)
    out = subprocess.run(
        [sys.executable, "-c", EMBEDDED_SCRIPT, str(source), QUESTION],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["response"] == "QX-4417" and result["status"] == "succeeded"
    assert result["models"] == ["openai/scripted-root", "openai/scripted-sub"]
    database = tmp_path / "data" / "rlm-engine" / "rlm.db"
    with sqlite3.connect(database) as db:
        row = db.execute(
            "SELECT status, final_answer FROM executions WHERE id = ?", (result["id"],)
        ).fetchone()
    assert row == ("succeeded", "QX-4417")


def test_max_concurrent_subcalls_as_the_reference_names_it(api_url, scripted):
    """`RLM(max_concurrent_subcalls=3)`: the model sees at most three of its sub-calls at once."""
    fan_out = (
        "```repl\nanswers = llm_query_batched([f'q {i}' for i in range(20)])\nFINAL(str(len(answers)))\n```"
    )
    scripted.responder = lambda request: fan_out if request["model"] == "scripted-root" else "leaf"
    scripted.latency = 0.3
    rlm = RLM(backend_kwargs=SCRIPTED, max_concurrent_subcalls=3, base_url=api_url)
    result = rlm.completion(CONTEXT, root_prompt=QUESTION)
    assert result.response == "20" and result.metadata["options"]["max_concurrent_subcalls"] == 3
    assert scripted.stats()["peak_concurrency"] == 3 and scripted.stats()["total_calls"] == 21
    rlm.close()
    with pytest.raises(TypeError, match="its operator registers them with RLM_TOOLS"):
        RLM(custom_tools={"f": print}, base_url=api_url)


OFFLINE_SCRIPT = textwrap.dedent(
    """
    import json, sys, warnings
    from rlm_client import RLM
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rlm = RLM(backend="openai", backend_kwargs={"model_name": "gpt-4o-mini"}, max_iterations=20)
        result = rlm.completion(open(sys.argv[1]).read(), root_prompt=sys.argv[2])
    print(json.dumps({"offline": result.offline, "status": result.status, "root": result.root_model,
                      "warnings": [str(w.message) for w in caught]}))
    """
)


def test_the_documented_reference_call_with_no_key_runs_the_offline_plan(tmp_path):
    """docs/integrations/python.md: embedded, with no key, the offline plan runs (not a 422)."""
    source = tmp_path / "note.txt"
    source.write_text("The ship came to anchor in Table Bay on 9 May 1887.\n", encoding="utf-8")
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    for name in (
        "DATABASE_URL",
        "DISPATCH",
        "CELERY_BROKER_URL",
        "RLM_API_URL",
        "RLM_API_TOKEN",
        "OPENAI_API_KEY",
        "LLM_API_BASE",
        "LLM_API_KEY",
        "DEFAULT_MODEL",
        "SUB_MODEL",
        "MODEL_ALLOWLIST",
    ):
        env.pop(name, None)
    out = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, str(source), "Where did the ship come to anchor?"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["offline"] is True and result["status"] == "succeeded", result
    assert any("no API key for openai/gpt-4o-mini" in w and "offline plan" in w for w in result["warnings"])
