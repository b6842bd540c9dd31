"""Custom tools through the real stack: Celery workers started with RLM_TOOLS, the scripted model
writing the code, Postgres holding the trace. The tools are `samples.tools` (the documented
example) and `tests.support.tool_functions` (tools that hang, fail, or answer with non-JSON)."""

from __future__ import annotations

import hashlib
import time

import pytest

from tests.integration.test_engine_through_the_stack import fence, is_root, submit, trace, wait_done
from tests.support.services import (
    CeleryWorker,
    app_from_env,
    free_redis_db,
    stop_workers,
    wait_for,
    worker_env,
)

TOOLS = (
    "samples.tools:checksum,samples.tools:iso_week,"
    "tests.support.tool_functions:hang,tests.support.tool_functions:explode,"
    "tests.support.tool_functions:opaque"
)
TOOL_TIMEOUT = 4.0


@pytest.fixture(scope="module")
def tools_client(pg_database_url, model_server):
    """An API and a root and an llm worker of their own (own queues), the workers offering TOOLS."""
    broker, backend = free_redis_db((26, 27))  # queues of its own (tests use 3-14, 20-25)
    env = worker_env(
        pg_database_url,
        broker,
        backend,
        model_server.url,
        RLM_TOOLS=TOOLS,
        TOOL_TIMEOUT_SECONDS=str(TOOL_TIMEOUT),
    )
    with app_from_env(env) as app:
        celery = app.extensions["celery"]
        root = CeleryWorker("rlm.root", env, pool="threads", concurrency=2, name="tools-root")
        llm = CeleryWorker("rlm.llm", env, pool="threads", concurrency=4, name="tools-llm")
        try:
            root.wait_ready(celery, timeout=240)
            llm.wait_ready(celery, timeout=240)
            yield app.test_client()
        finally:
            stop_workers(root, llm)


def scripted_root(scripted, code: str) -> list[str]:
    """The root model writes `code`; returns the system prompts it was shown."""
    systems: list[str] = []

    def responder(request):
        if not is_root(request):
            return "leaf"
        systems.append(next(m["content"] for m in request["messages"] if m["role"] == "system"))
        return fence(code)

    scripted.responder = responder
    return systems


def tool_nodes(client, execution_id):
    return [n for n in trace(client, execution_id) if n["kind"] == "tool"]


def test_a_tool_is_offered_with_its_docstring_called_from_code_and_traced(tools_client, scripted):
    systems = scripted_root(
        scripted,
        "try:\n"
        "    import hashlib\n"
        "except ImportError as exc:\n"
        "    print('import refused:', exc)\n"
        "digest = checksum('abc')\n"
        "week = iso_week(date='2026-12-08')\n"
        "print(repr(checksum))\n"
        "FINAL(f'{digest}|{week}')",
    )
    eid = submit(tools_client, user_query="checksum of abc?", context="abc")
    result = wait_done(tools_client, eid)
    assert result["status"] == "succeeded", result
    assert result["final_answer"] == f"{hashlib.sha256(b'abc').hexdigest()}|[2026, 50, 2]"

    prompt = systems[0]
    assert "Tools of this server" in prompt
    assert (
        "`checksum(text: str, algorithm: str = 'sha256') -> str`: The hex digest of `text` (UTF-8)" in prompt
    )
    assert "`iso_week(date: str) -> list[int]`: The ISO year, week number" in prompt
    assert "`hang(seconds: float = 3600.0) -> str`" in prompt

    nodes = tool_nodes(tools_client, eid)
    assert [n["prompt"] for n in nodes] == ['checksum("abc")', 'iso_week(date="2026-12-08")']
    assert nodes[0]["response"] == f'"{hashlib.sha256(b"abc").hexdigest()}"'
    assert nodes[1]["response"] == "[2026, 50, 2]"
    assert all(n["status"] == "succeeded" and n["error"] is None for n in nodes)
    assert all(n["started_at"] and n["finished_at"] for n in nodes)
    code = next(n for n in trace(tools_client, eid) if n["kind"] == "code")
    assert {n["parent_id"] for n in nodes} == {code["id"]}
    # the tool ran in the worker; the sandbox still imports nothing new
    assert "import refused:" in code["stdout"] and "hashlib" in code["stdout"]
    assert "<REPL tool checksum(text: str, algorithm: str = 'sha256') -> str" in code["stdout"]
    # the dashboard shows the calls in the tree and the waterfall
    page = tools_client.get(f"/executions/{eid}").get_data(as_text=True)
    assert page.count('class="kind k-tool"') >= 4 and "checksum(&#34;abc&#34;)" in page


def test_a_failing_tool_gives_the_code_an_error_string(tools_client, scripted):
    scripted_root(
        scripted,
        "try:\n"
        "    checksum({1, 2})\n"
        "except TypeError as exc:\n"
        "    print(exc)\n"
        "a = explode('boom')\nb = opaque()\nFINAL(a + ' || ' + b)",
    )
    eid = submit(tools_client, user_query="q", context="text")
    result = wait_done(tools_client, eid)
    assert result["status"] == "succeeded", result
    first, second = result["final_answer"].split(" || ")
    assert first == "Error: tool explode failed: ValueError: boom"
    assert second.startswith("Error: tool opaque returned a value that is not JSON data")
    nodes = tool_nodes(tools_client, eid)
    assert [n["status"] for n in nodes] == ["failed", "failed"]
    assert nodes[0]["error"] == "tool explode failed: ValueError: boom"
    code = next(n for n in trace(tools_client, eid) if n["kind"] == "code")
    assert "checksum: arguments must be JSON-serialisable" in code["stdout"]  # refused in the sandbox


def test_a_hanging_tool_is_abandoned_after_its_time_limit(tools_client, scripted):
    scripted_root(scripted, "r = hang()\nFINAL(r + ' | ' + checksum('x', algorithm='md5'))")
    started = time.monotonic()
    eid = submit(tools_client, user_query="q", context="text")
    result = wait_done(tools_client, eid)
    assert result["status"] == "succeeded", result
    assert result["final_answer"] == (
        f"Error: tool hang did not answer within {TOOL_TIMEOUT:g} s; it was abandoned | "
        f"{hashlib.md5(b'x').hexdigest()}"
    )
    assert time.monotonic() - started < TOOL_TIMEOUT + 20
    assert [n["status"] for n in tool_nodes(tools_client, eid)] == ["timed_out", "succeeded"]


def test_a_hanging_tool_is_cut_at_the_execution_timeout(tools_client, scripted):
    scripted_root(scripted, "hang()\nFINAL('never')")
    started = time.monotonic()
    eid = submit(tools_client, user_query="q", context="text", options={"timeout_seconds": 1.5})
    result = wait_done(tools_client, eid)
    assert result["status"] == "timed_out", result
    assert time.monotonic() - started < 15
    (node,) = tool_nodes(tools_client, eid)
    assert node["status"] == "timed_out" and "timeout_seconds" in node["error"]


def test_a_hanging_tool_is_cut_on_cancel(tools_client, scripted):
    scripted_root(scripted, "hang()\nFINAL('never')")
    eid = submit(tools_client, user_query="q", context="text")
    wait_for(
        lambda: [n for n in tool_nodes(tools_client, eid) if n["status"] == "running"],
        60,
        what="tool running",
    )
    cancelled_at = time.monotonic()
    assert tools_client.post(f"/api/executions/{eid}/cancel").status_code == 200

    def tool_stopped():
        nodes = tool_nodes(tools_client, eid)
        return nodes if nodes[0]["status"] != "running" else None

    (node,) = wait_for(tool_stopped, 15, what="the tool call abandoned")
    assert node["status"] == "cancelled" and "cancelled" in node["error"]
    assert time.monotonic() - cancelled_at < TOOL_TIMEOUT  # the cancel, not the tool's own limit
    assert wait_done(tools_client, eid)["status"] == "cancelled"


def test_tool_calls_count_against_max_tool_calls(tools_client, scripted):
    scripted_root(scripted, "checksum('a')\nchecksum('b')\nFINAL('two')")
    eid = submit(tools_client, user_query="q", context="text", options={"max_tool_calls": 1})
    result = wait_done(tools_client, eid)
    assert result["status"] == "failed" and result["guard_hit"] == "max_tool_calls", result
    assert len(tool_nodes(tools_client, eid)) == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/execute", {"user_query": "q", "context": "t", "custom_tools": {"f": "def f(): pass"}}),
        ("/api/execute", {"user_query": "q", "context": "t", "tools": ["samples.tools:checksum"]}),
        ("/api/execute", {"user_query": "q", "context": "t", "options": {"custom_tools": {"f": "x"}}}),
        ("/api/execute", {"user_query": "q", "context": "t", "options": {"rlm_tools": "os:system"}}),
        ("/api/sessions", {"name": "s", "context": "t", "tools": {"f": "x"}}),
        (
            "/v1/chat/completions",
            {
                "model": "rlm",
                "messages": [{"role": "user", "content": "q"}],
                "rlm": {"options": {"tools": ["x"]}},
            },
        ),
    ],
)
def test_the_api_refuses_any_attempt_to_register_tools(tools_client, path, body):
    response = tools_client.post(path, json=body)
    assert response.status_code in (400, 422), response.get_json()
    error = response.get_json()["error"]
    assert set(error) >= {"code", "message"} and (
        "tools" in error["message"] or "rlm_tools" in error["message"]
    )


def test_a_worker_whose_tools_cannot_load_stops_at_start_saying_why(pg_database_url, model_server):
    broker, backend = free_redis_db((28, 29))
    env = worker_env(
        pg_database_url, broker, backend, model_server.url, RLM_TOOLS="samples.tools:no_such_tool"
    )
    worker = CeleryWorker("rlm.root", env, pool="threads", concurrency=1, name="tools-broken")
    try:
        wait_for(lambda: worker.proc.poll() is not None, 240, what="the worker to exit")
        assert worker.proc.returncode != 0
        log = worker.log_path.read_text()
        assert (
            "custom tools: RLM_TOOLS entry 'samples.tools:no_such_tool': samples.tools has no no_such_tool"
            in log
        )
    finally:
        stop_workers(worker)
