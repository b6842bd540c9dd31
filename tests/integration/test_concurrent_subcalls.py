"""`max_concurrent_subcalls` through the real stack: the scripted model counts the requests it
has in flight at once, so the test measures what the model saw, not what the engine meant."""

from __future__ import annotations

from tests.integration.test_engine_through_the_stack import submit, trace, wait_done

FAN_OUT = "answers = llm_query_batched([f'question {i}' for i in range(20)])\nFINAL(str(len(answers)))"
CHILDREN = "answers = rlm_query_batched([f'question {i}' for i in range(6)])\nFINAL(str(len(answers)))"


def test_twenty_sub_calls_at_most_three_at_once(stack_client, scripted):
    scripted.responder = lambda request: "leaf"
    scripted.latency = 0.3  # long enough for every call the gate lets out to overlap
    eid = submit(
        stack_client,
        user_query="fan out",
        context="some text",
        options={"root_code": FAN_OUT, "max_concurrent_subcalls": 3},
    )
    result = wait_done(stack_client, eid)
    assert result["status"] == "succeeded" and result["final_answer"] == "20", result
    stats = scripted.stats()
    assert stats["total_calls"] == 20 and stats["peak_concurrency"] == 3, stats
    calls = [n for n in trace(stack_client, eid) if n["kind"] == "llm_call"]
    assert len(calls) == 20 and all(n["status"] == "succeeded" for n in calls)
    assert stack_client.get(f"/api/executions/{eid}").get_json()["options"]["max_concurrent_subcalls"] == 3


def test_without_a_limit_the_same_fan_out_overlaps_more(stack_client, scripted):
    """The measurement above can fail: unlimited, the same twenty calls overlap beyond three."""
    scripted.responder = lambda request: "leaf"
    scripted.latency = 0.3
    eid = submit(stack_client, user_query="fan out", context="some text", options={"root_code": FAN_OUT})
    assert wait_done(stack_client, eid)["status"] == "succeeded"
    assert scripted.stats()["peak_concurrency"] > 3


def test_rlm_query_children_share_the_limit(stack_client, scripted):
    """Six children, limit 2: each child's own turns and sub-calls together stay at two at once."""

    def responder(request):
        system = next((m["content"] for m in request["messages"] if m["role"] == "system"), "")
        if "Recursive Language Model" in system:
            return "```repl\nFINAL(llm_query('leaf question'))\n```"
        return "leaf"

    scripted.responder = responder
    scripted.latency = 0.2
    eid = submit(
        stack_client,
        user_query="children",
        context="some text",
        options={"root_code": CHILDREN, "max_concurrent_subcalls": 2},
    )
    result = wait_done(stack_client, eid)
    assert result["status"] == "succeeded" and result["final_answer"] == "6", result
    assert scripted.stats()["total_calls"] == 12  # each child: one turn, one sub-call
    assert scripted.stats()["peak_concurrency"] == 2


def test_a_limit_over_the_servers_ceiling_is_refused(stack_client):
    response = stack_client.post(
        "/api/execute",
        json={"user_query": "q", "context": "text", "options": {"max_concurrent_subcalls": 65}},
    )
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_field" and "MAX_CONCURRENT_SUBCALLS_CEILING" in error["message"]
    assert error["details"][0]["field"] == "options.max_concurrent_subcalls"
    response = stack_client.post(
        "/api/execute", json={"user_query": "q", "context": "text", "options": {"max_concurrent_subcalls": 0}}
    )
    assert response.status_code == 422
