"""The engine's features through the real stack: HTTP, Celery workers, litellm, Postgres."""

from __future__ import annotations

import json

from tests.support.scripted_model import ScriptedError, turn_index
from tests.support.services import wait_for

FINISHED = ("succeeded", "failed", "timed_out", "cancelled")


def fence(code: str) -> str:
    return f"```repl\n{code}\n```"


def is_root(request) -> bool:
    system = next((m["content"] for m in request["messages"] if m["role"] == "system"), "")
    return "Recursive Language Model" in system


def first_user(request) -> str:
    return next(m["content"] for m in request["messages"] if m["role"] == "user")


def submit(client, **body) -> str:
    response = client.post("/api/execute", json=body)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["execution_id"]


def wait_done(client, execution_id, timeout=60):
    def done():
        body = client.get(f"/api/executions/{execution_id}").get_json()
        return body if body["status"] in FINISHED else None

    return wait_for(done, timeout, what=f"execution {execution_id}")


def trace(client, execution_id):
    return client.get(f"/api/executions/{execution_id}/trace").get_json()["nodes"]


def test_recursion_to_depth_three_with_batched_children(stack_client, scripted):
    def responder(request):
        if not is_root(request):
            return "leaf"
        return fence(
            "if len(context) <= 2:\n"
            "    FINAL(context.upper())\n"
            "half = len(context) // 2\n"
            "parts = rlm_query_batched(['upper'] * 2, contexts=[context[:half], context[half:]])\n"
            "FINAL(''.join(parts))"
        )

    scripted.responder = responder
    eid = submit(
        stack_client, user_query="upper-case it", context="abcdefgh", options={"max_recursion_depth": 3}
    )
    result = wait_done(stack_client, eid)
    assert result["status"] == "succeeded", result
    assert result["final_answer"] == "ABCDEFGH"
    nodes = trace(stack_client, eid)
    children = [n for n in nodes if n["kind"] == "child_rlm"]
    assert len(children) == 6 and {n["depth"] for n in children} == {1, 2}
    assert scripted.stats()["by_model"]["scripted-root"] == 1 + 6


def test_a_failing_sub_call_inside_a_batch_yields_an_error_string(stack_client, scripted):
    def responder(request):
        if is_root(request):
            return fence("import json\nrs = llm_query_batched(['a', 'boom', 'c'])\nFINAL(json.dumps(rs))")
        if "boom" in request["messages"][-1]["content"]:
            raise ScriptedError(400, "the model refused")
        return request["messages"][-1]["content"].upper()

    scripted.responder = responder
    eid = submit(stack_client, user_query="batch", context="x")
    result = wait_done(stack_client, eid)
    assert result["status"] == "succeeded", result
    answers = json.loads(result["final_answer"])
    assert answers[0] == "A" and answers[2] == "C"
    assert answers[1].startswith("Error:") and "refused" in answers[1]
    calls = [n for n in trace(stack_client, eid) if n["kind"] == "llm_call"]
    assert [c["status"] for c in calls] == ["succeeded", "failed", "succeeded"]


def test_guard_max_sub_calls_stops_the_run_and_is_recorded(stack_client, scripted):
    scripted.responder = lambda r: (
        fence("for i in range(50):\n    llm_query(str(i))\nFINAL('no')") if is_root(r) else "x"
    )
    eid = submit(
        stack_client, user_query="guard", context="x", options={"max_sub_calls": 4, "max_iterations": 1}
    )
    result = wait_done(stack_client, eid)
    assert result["status"] == "failed"
    assert result["guard_hit"] == "max_sub_calls"
    assert len([n for n in trace(stack_client, eid) if n["kind"] == "llm_call"]) == 4


def test_memory_inherited_by_a_child_merges_back(stack_client, scripted):
    def responder(request):
        if not is_root(request):
            return "x"
        if "root agent" in first_user(request):
            return fence(
                "memory.append('learnings', 'parent knows A')\n"
                "rlm_query('look', context='child text', inherit_memory=True)\n"
                "FINAL(memory['learnings'])"
            )
        assert "parent knows A" in first_user(request)
        return fence("memory.append('learnings', 'child learned B')\nFINAL('ok')")

    scripted.responder = responder
    eid = submit(stack_client, user_query="memory", context="x")
    result = wait_done(stack_client, eid)
    assert result["status"] == "succeeded", result
    assert result["final_answer"].splitlines() == ["parent knows A", "child learned B"]


def test_a_session_keeps_variables_and_memory_across_executions(stack_client, scripted):
    session = stack_client.post("/api/sessions", json={"name": "s", "context": "alpha beta gamma"}).get_json()

    def responder(request):
        if "first run" in first_user(request):
            return fence(
                "words = context.split()\nmemory.append('learnings', 'there are 3 words')\nFINAL('stored')"
            )
        return fence("FINAL(words[-1] + ' / ' + memory['learnings'])")

    scripted.responder = responder
    first = wait_done(stack_client, submit(stack_client, user_query="first run", session_id=session["id"]))
    assert first["status"] == "succeeded", first
    second = wait_done(stack_client, submit(stack_client, user_query="second run", session_id=session["id"]))
    assert second["status"] == "succeeded", second
    assert second["final_answer"] == "gamma / there are 3 words"


def test_list_context_and_final_outside_a_fence(stack_client, scripted):
    def responder(request):
        if turn_index(request) == 0:
            assert "list of 3 items" in first_user(request)
            return fence("n = sum(len(x) for x in context)\nprint(n)")
        return "Counted.\nFINAL(n)"

    scripted.responder = responder
    result = wait_done(stack_client, submit(stack_client, user_query="count", context=["ab", "cde", "f"]))
    assert result["status"] == "succeeded", result
    assert result["final_answer"] == "6"


def test_a_model_that_never_answers_gets_a_forced_final(stack_client, scripted):
    def responder(request):
        if "every iteration you were allowed" in request["messages"][-1]["content"]:
            return "FINAL(best effort)"
        return fence("print('thinking')")

    scripted.responder = responder
    eid = submit(stack_client, user_query="never", context="x", options={"max_iterations": 2})
    result = wait_done(stack_client, eid)
    assert result["status"] == "succeeded"
    assert result["forced_final"] is True
    assert result["final_answer"] == "best effort"


def test_guards_on_tokens_and_cost_stop_the_run_through_the_stack(stack_client, scripted):
    program = fence("for i in range(200):\n    llm_query('tell me more ' * 50)\nFINAL('unreachable')")
    scripted.responder = lambda r: program if is_root(r) else "more " * 100
    tokens = wait_done(
        stack_client,
        submit(
            stack_client,
            user_query="tokens",
            context="x",
            options={"max_total_tokens": 3000, "max_iterations": 1},
        ),
    )
    assert tokens["status"] == "failed" and tokens["guard_hit"] == "max_total_tokens"
    assert tokens["total_input_tokens"] + tokens["total_output_tokens"] < 3000 + 1000
    cost = wait_done(
        stack_client,
        submit(
            stack_client,
            user_query="cost",
            context="x",
            options={"max_cost_usd": 0.0005, "max_iterations": 1},
        ),
    )
    assert cost["status"] == "failed" and cost["guard_hit"] == "max_cost_usd"
    assert 0.0005 < cost["total_cost_usd"] < 0.002
