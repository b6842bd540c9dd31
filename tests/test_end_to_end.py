"""The walking skeleton, end to end: HTTP → Celery root worker → sandbox → rlm.llm workers → litellm
→ the scripted model server → trace rows in Postgres → the dashboard page."""

from __future__ import annotations

import random
import string

from tests.support.services import wait_for

SECRET = "ZEBRA-4417"


def haystack(size: int, secret_at: float | None, seed: int = 7) -> str:
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(2000)]
    text = []
    length = 0
    while length < size:
        sentence = " ".join(rng.choices(words, k=12)).capitalize() + ". "
        text.append(sentence)
        length += len(sentence)
    body = "".join(text)[:size]
    if secret_at is None:
        return body
    at = int(len(body) * secret_at)
    needle = f" The secret code is {SECRET}. "
    return body[:at] + needle + body[at + len(needle) :]


def finished(client, execution_id):
    body = client.get(f"/api/executions/{execution_id}").get_json()
    return body if body["status"] in ("succeeded", "failed", "timed_out", "cancelled") else None


def test_one_million_characters_end_to_end(stack_client, scripted):
    context = haystack(1_000_000, secret_at=0.73)
    assert len(context) == 1_000_000

    response = stack_client.post(
        "/api/execute", json={"user_query": "What is the secret code?", "context": context}
    )
    assert response.status_code == 202, response.get_json()
    execution_id = response.get_json()["execution_id"]

    result = wait_for(
        lambda: finished(stack_client, execution_id), timeout=90, what="the execution to finish"
    )
    assert result["status"] == "succeeded", result
    assert result["final_answer"] == SECRET
    assert result["total_input_tokens"] > 0 and result["total_output_tokens"] > 0
    assert result["total_cost_usd"] > 0

    nodes = stack_client.get(f"/api/executions/{execution_id}/trace").get_json()["nodes"]
    kinds = [n["kind"] for n in nodes]
    assert kinds.count("root") == 1
    assert kinds.count("iteration") >= 1
    assert kinds.count("code") >= 1
    assert kinds.count("llm_call") == 10  # one per 100,000-character chunk
    by_id = {n["id"]: n for n in nodes}
    code_node = next(n for n in nodes if n["kind"] == "code")
    assert "llm_query_batched" in code_node["code"]
    for n in nodes:
        if n["kind"] == "llm_call":
            assert by_id[n["parent_id"]]["kind"] == "code"
            assert n["status"] == "succeeded"
            assert n["input_tokens"] > 0 and n["cost_usd"] > 0
    answers = [n["response"] for n in nodes if n["kind"] == "llm_call"]
    assert answers.count(SECRET) == 1 and answers.count("NONE") == 9
    assert [n["path"] for n in nodes] == sorted(n["path"] for n in nodes)

    # 1 root call + 10 sub-calls reached the model, over HTTP.
    assert scripted.stats()["by_model"] == {"scripted-root": 1, "scripted-sub": 10}

    page = stack_client.get(f"/executions/{execution_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert SECRET in html
    for node in nodes:
        assert node["id"] in html, f"{node['kind']} node missing from the page"
    listing = stack_client.get("/executions").get_data(as_text=True)
    assert execution_id in listing
