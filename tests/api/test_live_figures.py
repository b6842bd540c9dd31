"""Every figure a person sees while a run goes on agrees with its trace at that moment.

A real run (Celery workers, the scripted model) makes sub-calls one by one; the model holds the
fourth back until the test lets it go, so the run stands still mid-way with three calls finished.
The API record, the SSE `status` event, the dashboard header, CLI progress and the MCP view are
then read and compared with the totals computed here from `/trace` alone.
"""

from __future__ import annotations

import re
import threading

from tests.api.test_live import is_root
from tests.support.scripted_model import turn_index, user_text
from tests.support.services import wait_for

HELD_BACK = "part 3"
PROGRAM = "```repl\nfor i in range(6):\n    print(llm_query(f'part {i}'))\n```"


def from_trace(nodes: list[dict]) -> dict:
    """The totals, counted here from the trace's nodes (independently of the product's query)."""
    model_calls = [
        n
        for n in nodes
        if (n["kind"] == "iteration" and n["response"] is not None)
        or (n["kind"] == "llm_call" and n["status"] in ("succeeded", "failed"))
    ]
    priced = [n for n in nodes if n["kind"] in ("iteration", "llm_call")]
    return {
        "llm_calls": len(model_calls),
        "sub_calls": sum(1 for n in nodes if n["kind"] in ("llm_call", "child_rlm")),
        "total_input_tokens": sum(n["input_tokens"] for n in priced),
        "total_output_tokens": sum(n["output_tokens"] for n in priced),
    }


def header_figures(html: str) -> dict:
    def figure(label: str) -> str:
        match = re.search(rf"<dt>{re.escape(label)}</dt><dd>([^<]*)</dd>", html)
        assert match, label
        return match.group(1).replace(",", "").strip()

    tokens_in, tokens_out = figure("Tokens in / out").split(" / ")
    return {
        "llm_calls": int(figure("Model calls")),
        "sub_calls": int(figure("Sub-calls")),
        "total_input_tokens": int(tokens_in),
        "total_output_tokens": int(tokens_out),
    }


def test_every_live_figure_agrees_with_the_trace_mid_run(stack_app, stack_client, scripted):
    from rlm_api.cli.progress import read_snapshot
    from rlm_api.events import execution_updates
    from rlm_api.mcp.actions import execution_view

    held, release = threading.Event(), threading.Event()

    def responder(request):
        if is_root(request):
            return PROGRAM if turn_index(request) == 0 else "FINAL(done)"
        if user_text(request) == HELD_BACK:
            held.set()
            release.wait(60)
        return "ok " * 7

    scripted.responder = responder
    execution_id = stack_client.post(
        "/api/execute", json={"user_query": "count the parts", "context": "some text"}
    ).get_json()["execution_id"]
    try:
        wait_for(held.is_set, timeout=120, what="the held-back sub-call to reach the model")
        # Calls 0-2 are written before call 3 is sent (one after another): the run stands still.
        nodes = stack_client.get(f"/api/executions/{execution_id}/trace").get_json()["nodes"]
        expected = from_trace(nodes)
        assert expected["llm_calls"] == 1 + 3 and expected["sub_calls"] == 3
        assert expected["total_input_tokens"] > 0 and expected["total_output_tokens"] > 0

        record = stack_client.get(f"/api/executions/{execution_id}").get_json()
        assert record["status"] == "running"
        listed = stack_client.get("/api/executions?limit=50").get_json()["items"]
        (in_list,) = [e for e in listed if e["id"] == execution_id]
        html = stack_client.get(f"/executions/{execution_id}").get_data(as_text=True)
        with stack_app.test_request_context():
            status = next(data for event, data in execution_updates(execution_id) if event == "status")
            snap = read_snapshot(execution_id)
            mcp = execution_view(execution_id, with_trace=False)

        fields = list(expected)
        assert {k: record[k] for k in fields} == expected
        assert {k: in_list[k] for k in fields} == expected
        assert {k: status[k] for k in fields} == expected
        assert header_figures(html) == expected
        assert {k: mcp[k] for k in fields} == expected
        assert (snap.llm_calls, snap.subcalls_done, snap.subcalls_total) == (4, 3, 3)
        assert (snap.input_tokens, snap.output_tokens) == (
            expected["total_input_tokens"],
            expected["total_output_tokens"],
        )
        assert "4 model calls" in snap.line()
    finally:
        release.set()

    def finished():
        body = stack_client.get(f"/api/executions/{execution_id}").get_json()
        return body if body["status"] == "succeeded" else None

    final = wait_for(finished, timeout=120, what="the run to finish")
    nodes = stack_client.get(f"/api/executions/{execution_id}/trace").get_json()["nodes"]
    # The stored record is its trace's totals too (2 root turns, 6 sub-calls).
    assert {k: final[k] for k in fields} == from_trace(nodes) | {"llm_calls": 8, "sub_calls": 6}
