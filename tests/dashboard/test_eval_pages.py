"""The eval pages: a run submitted through `POST /api/evals` (no worker consumes this broker), its
executions then finished through the real models as a worker would record them; the page scores
them, shows the table beside the base model, the plot, and links every item to its trace."""

from __future__ import annotations

import re

from rlm_shared.models import EvalRun, Execution
from rlm_worker.engine.types import utcnow

TASKS = {
    "user_tasks": [
        {
            "id": "vault",
            "input": "The vault code is 4417. " * 20,
            "question": "Vault code?",
            "answers": ["4417"],
        },
        {"id": "ferry", "input": "The ferry leaves at 7:45. " * 20, "question": "When?", "answers": ["7:45"]},
    ],
    "configs": [{"name": "rlm <b>mini</b>", "model": "openai/scripted-root"}],
}


def finish(app, eval_id: str, answers: dict[str, str]) -> None:
    """Record every execution of the eval finished, answering by question as given."""
    from rlm_api.database import db
    from rlm_api.evals.store import run_items

    with app.app_context():
        for item in run_items(eval_id):
            execution = db.session.get(Execution, item.execution_id)
            execution.status, execution.final_answer = "succeeded", answers[item.item_id]
            execution.started_at = execution.finished_at = utcnow()
            execution.total_cost_usd, execution.total_input_tokens = 0.002, 1500
        db.session.commit()


def test_an_eval_page_fills_in_as_its_executions_finish(client, app):
    created = client.post("/api/evals", json=TASKS)
    assert created.status_code == 202, created.get_json()
    eval_id = created.get_json()["id"]

    running = client.get(f"/evals/{eval_id}")
    assert running.status_code == 200
    page = running.text
    assert 'http-equiv="refresh"' in page and "0 / 4" in page
    assert "rlm &lt;b&gt;mini&lt;/b&gt;" in page and "<b>mini</b>" not in page  # names are escaped
    assert client.get(f"/evals/{eval_id}/plot.svg").status_code == 404  # no report yet

    finish(client.application, eval_id, {"vault": "The code is 4417.", "ferry": "NONE"})
    page = client.get(f"/evals/{eval_id}").text

    assert 'http-equiv="refresh"' not in page and "4 / 4" in page
    summary = page.split('id="eval-summary"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(
        r"<tr[^>]*>\s*<td>(\w+)</td><td class=\"num\">([\d,]+)</td><td>([^<]+)</td>\s*"
        r"<td class=\"num\">([\d.]+)</td>\s*<td class=\"num\">([^<]+)</td>",
        summary,
    )
    found = {(t, s, c, a, b) for t, s, c, a, b in rows}
    # Each input is its own size (480 and 520 characters); the baseline answered as the config did.
    assert ("user", "480", "rlm &lt;b&gt;mini&lt;/b&gt;", "1.00", "1.00") in found
    assert ("user", "520", "rlm &lt;b&gt;mini&lt;/b&gt;", "0.00", "0.00") in found
    assert ("user", "480", "base model alone: openai/scripted-root", "1.00", "—") in found
    assert summary.count('<td class="num">0 / 1</td>') == 4  # failures / items of each row
    assert f'src="/evals/{eval_id}/plot.svg"' in page
    with app.app_context():
        from rlm_api.database import db

        executions = [e.id for e in db.session.query(Execution).all()]
    assert len(executions) == 4
    for execution_id in executions:
        assert f'href="/executions/{execution_id}"' in page
    svg = client.get(f"/evals/{eval_id}/plot.svg")
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    png = client.get(f"/evals/{eval_id}/plot.png")
    assert png.data.startswith(b"\x89PNG") and "attachment" in png.headers["Content-Disposition"]

    listing = client.get("/evals").text
    assert f'href="/evals/{eval_id}"' in listing and "succeeded" in listing
    assert 'href="/evals" aria-current="page"' in listing
    with app.app_context():
        from rlm_api.database import db

        assert db.session.get(EvalRun, eval_id).report["totals"]["rlm <b>mini</b>"]["accuracy"] == 0.5


def test_an_unknown_eval_is_404(client):
    assert client.get("/evals/" + "f" * 32).status_code == 404
    assert "There is no eval" in client.get("/evals/nope").text
