"""`POST /api/evals` and `GET /api/evals/<id>`: the tiny suite through the real Celery workers
and the scripted model (exact scores), and the errors a client can cause."""

from __future__ import annotations

from tests.evals.scripts import CHUNK_PROGRAM, CONFIG, EXPECTED, code_finder, scores
from tests.support.services import wait_for

TINY = {
    "suite": "tiny",
    "seed": 0,
    "configs": [{"name": CONFIG, "root_code": CHUNK_PROGRAM, "window_tokens": 1000}],
}


def test_an_eval_runs_on_the_workers_and_reports(stack_client, scripted):
    scripted.responder = code_finder

    response = stack_client.post("/api/evals", json=TINY)

    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["status"] == "running" and body["executions"] == 8 and body["report"] is None
    assert response.headers["Location"] == body["links"]["self"] == f"/api/evals/{body['id']}"
    partial = stack_client.get(body["links"]["report_markdown"])  # over the items scored so far
    assert partial.status_code == 200 and partial.text.startswith("# Eval: ")

    def finished():
        record = stack_client.get(body["links"]["self"]).get_json()
        return record if record["status"] == "succeeded" else None

    record = wait_for(finished, timeout=120, interval=0.3, what="the eval to finish")

    assert record["finished"] == 8
    report = record["report"]
    assert scores(report) == EXPECTED
    for item in report["items"]:
        execution = stack_client.get(item["links"]["execution"]).get_json()
        assert execution["status"] == "succeeded" and execution["final_answer"] == item["answer"]
        trace = stack_client.get(f"/api/executions/{item['execution_id']}/trace").get_json()
        assert trace["nodes"][0]["kind"] == "root"
        assert item["links"]["trace"] == f"/executions/{item['execution_id']}"
    markdown = stack_client.get(body["links"]["report_markdown"])
    assert markdown.status_code == 200 and "| needle | 6,000 | root program | 1.00 | 0.00 |" in markdown.text
    svg = stack_client.get(body["links"]["plot_svg"])
    assert svg.mimetype == "image/svg+xml" and b"multi_needle" in svg.data
    assert stack_client.get(body["links"]["plot_png"]).data.startswith(b"\x89PNG")
    listed = stack_client.get("/api/evals").get_json()["items"]
    assert body["id"] in [e["id"] for e in listed]


def test_bad_evals_are_4xx_naming_the_problem(client):
    cases = [
        ({"suite": "huge"}, 422, "invalid_field", "unknown suite 'huge'"),
        ({"tasks": ["needle"], "sizes": [10]}, 422, "invalid_field", "sizes are characters"),
        ({"configs": [{"strategy": "guess"}]}, 422, "invalid_field", "unknown strategy 'guess'"),
        ({"task_files": ["/etc/passwd"]}, 422, "invalid_field", "cannot be read over HTTP"),
        ({"tasks": ["needle"], "sizes": [60_000]}, 422, "invalid_eval", "over MAX_CONTEXT_SIZE (50,000"),
        (
            {"user_tasks": [{"id": "a", "input": "x" * 50_001, "question": "q", "answers": []}]},
            422,
            "invalid_eval",
            "MAX_CONTEXT_SIZE is 50,000",
        ),
        ({"tasks": ["needle"], "items": 200, "sizes": [1000] * 10}, 422, "invalid_field", "at most 2,000"),
        (
            {"user_tasks": [{"id": "a", "input_file": "x.txt", "question": "q", "answers": []}]},
            422,
            "invalid_field",
            "input, not input_file",
        ),
        ({"configs": [{"model": "evil/model"}], "tasks": ["needle"]}, 422, "model_not_allowed", "evil/model"),
    ]
    for body, status, code, words in cases:
        response = client.post("/api/evals", json=body)
        error = response.get_json()["error"]
        assert response.status_code == status and error["code"] == code, (body, error)
        assert words in error["message"], (body, error)
    assert client.get("/api/evals/" + "0" * 32).status_code == 404
    assert client.get("/api/evals/not-an-id").get_json()["error"]["code"] == "not_found"


def test_user_tasks_inline_make_one_execution_each(client):
    body = {
        "user_tasks": [
            {"id": "q1", "input": "The vault code is 4417.", "question": "Vault code?", "answers": ["4417"]},
            {
                "id": "q2",
                "input": "Nothing here.",
                "question": "Vault code?",
                "answers": [],
                "scorer": "abstain",
            },
        ],
        "baseline": False,
    }
    response = client.post("/api/evals", json=body)
    assert response.status_code == 202, response.get_json()
    record = client.get(response.get_json()["links"]["self"]).get_json()
    assert record["executions"] == 2 and record["status"] == "running" and record["finished"] == 0
