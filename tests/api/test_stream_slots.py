"""Every request that holds a web thread while a run goes on takes a stream slot (issue 30):
the event stream, `/v1/chat/completions`, an MCP tool call, and `POST /api/execute` with `wait`.
(Other tenants while a stream is held: test_served_limits.py, with real threads; the test client
runs every request in one thread, inside the held stream's context.)"""

from __future__ import annotations

import json
import time

from tests.api.conftest import ALICE, BOB, bearer, make_app

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
CHAT = {
    "model": "rlm",
    "messages": [{"role": "system", "content": "The ship anchored in Table Bay."}, {"role": "user", "content": "Where?"}],
}


def test_with_its_slot_taken_a_token_is_refused_a_second_long_request(api_db_url, broker, clean):
    app = make_app(
        api_db_url,
        api_tokens=f"{ALICE},{BOB}",
        api_rate_limit="1000/minute",
        api_max_streams_per_token=1,
        config={"API_EVENTS_MAX_SECONDS": 60},
    )
    client = app.test_client()
    started = client.post("/api/execute", json={"user_query": "q", "context": "c"}, headers=bearer(ALICE))
    execution_id = started.get_json()["id"]
    stream = client.get(f"/api/executions/{execution_id}/events", headers=bearer(ALICE), buffered=False)
    assert stream.status_code == 200  # Alice's one slot, held while the stream is open
    try:
        second = client.get(f"/api/executions/{execution_id}/events", headers=bearer(ALICE))
        assert second.status_code == 429 and second.get_json()["error"]["code"] == "too_many_streams"
        assert int(second.headers["Retry-After"]) > 0

        chat = client.post("/v1/chat/completions", json=CHAT, headers=bearer(ALICE))
        assert chat.status_code == 429, chat.get_json()

        call = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "ask_about_text", "arguments": {"question": "q", "text": "t", "wait_seconds": 0}},
        }
        mcp = client.post("/mcp", data=json.dumps(call), headers={**MCP_HEADERS, **bearer(ALICE)})
        assert mcp.status_code == 429
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
        listed = client.post("/mcp", data=json.dumps(listing), headers={**MCP_HEADERS, **bearer(ALICE)})
        assert listed.status_code == 200  # answered at once: no slot needed

        waited = client.post(
            "/api/execute", json={"user_query": "q", "context": "c", "wait": 30}, headers=bearer(ALICE)
        )
        assert waited.status_code == 202  # no slot: answered at once instead of waiting
    finally:
        stream.close()
    again = client.get(f"/api/executions/{execution_id}/events", headers=bearer(ALICE), buffered=False)
    assert again.status_code == 200  # the closed stream gave its slot back
    again.close()


def test_a_tokens_streams_are_counted_across_processes_and_a_dead_ones_lapse(broker):
    """Two processes' counters over one Redis see one count; the slots of a process that died
    (never given back, never renewed) free themselves when their lease lapses."""
    from rlm_api.streams import SharedCounts
    from tests.support.services import wait_for

    url = broker.connection_pool.connection_kwargs
    redis_url = f"redis://{url['host']}:{url['port']}/{url['db']}"
    first, second = SharedCounts(redis_url), SharedCounts(redis_url)
    first.LEASE_SECONDS = second.LEASE_SECONDS = 1.0  # a dead process's slots lapse after 1 s
    owner = "owner-across-processes"
    broker.delete(SharedCounts.key(owner))
    held = [first.take(owner, 3), second.take(owner, 3), first.take(owner, 3)]
    assert all(isinstance(m, str) for m in held)
    assert second.take(owner, 3) is False  # the limit holds over both processes
    second.give_back(held[1])
    again = second.take(owner, 3)
    assert isinstance(again, str)  # a slot given back is free at once
    # Wait (no fixed sleep) until every held lease has been renewed past two of its first terms:
    # the slots taken above would have lapsed twice over by then had nobody renewed them.
    past_two_leases = time.time() + 2 * first.LEASE_SECONDS
    assert wait_for(
        lambda: min(score for _m, score in broker.zrange(SharedCounts.key(owner), 0, -1, withscores=True))
        > past_two_leases,
        timeout=15,
        interval=0.1,
    )
    assert time.time() > past_two_leases - first.LEASE_SECONDS  # the first terms are over
    assert second.take(owner, 3) is False
    with first._lock:  # `first` dies: its two slots are neither given back nor renewed, and lapse
        first._mine.clear()
    assert wait_for(lambda: isinstance(m := second.take(owner, 3), str) and m, timeout=10, interval=0.2)
