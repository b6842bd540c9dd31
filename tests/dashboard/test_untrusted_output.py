"""Everything a model or a document wrote is untrusted: pages escape it, nothing runs."""

from __future__ import annotations

import sqlalchemy as sa

from rlm_api.database import db
from rlm_shared.models import TraceNode
from tests.dashboard.builders import make_execution, make_session
from tests.dashboard.real_runs import HOSTILE, hostile_responder, run_hostile_execution, wait_finished

RAW_MARKUP = ("<script>alert", "<img src=x", "<b>bold</b>", "<i><script")


def assert_escaped(body: str, where: str) -> None:
    for raw in RAW_MARKUP:
        assert raw not in body, f"{raw!r} unescaped in {where}"


def all_dashboard_pages(client, app, execution_id: str, session_id: str | None) -> dict[str, str]:
    urls = [
        "/executions",
        f"/executions/{execution_id}",
        f"/executions/{execution_id}/live",
        "/sessions",
        "/stats",
    ]
    if session_id:
        urls += [f"/sessions/{session_id}", f"/executions?session={session_id}"]
    with app.app_context():
        node_ids = db.session.scalars(
            sa.select(TraceNode.id).where(TraceNode.execution_id == execution_id)
        ).all()
    assert node_ids
    for node_id in node_ids:
        urls.append(f"/executions/{execution_id}/nodes/{node_id}")
    pages = {}
    for url in urls:
        for headers in ({}, {"HX-Request": "true"}):
            response = client.get(url, headers=headers)
            assert response.status_code == 200, url
            pages[f"{url} {headers}"] = response.get_data(as_text=True)
    return pages


def test_hostile_rows_are_escaped_on_every_page(app, client):
    session_id = make_session(app, name=HOSTILE, memory={"learnings": HOSTILE}, variables={"v": HOSTILE})
    built = make_execution(
        app,
        session_id=session_id,
        user_query=HOSTILE,
        final_answer=HOSTILE,
        error=HOSTILE,
        root_model=HOSTILE,
        status="running",
    )
    pages = all_dashboard_pages(client, app, built.execution_id, session_id)
    for where, body in pages.items():
        assert_escaped(body, where)
    assert (
        "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in pages[f"/executions/{built.execution_id} {{}}"]
    )


def test_hostile_model_output_from_a_real_run_is_escaped(stack_app, stack_client, scripted):
    scripted.responder = hostile_responder
    session_id, execution_id = run_hostile_execution(stack_client)
    execution = wait_finished(stack_app, execution_id)
    assert execution.status == "succeeded", execution.error
    assert HOSTILE in execution.final_answer
    pages = all_dashboard_pages(stack_client, stack_app, execution_id, session_id)
    for where, body in pages.items():
        assert_escaped(body, where)
    page = pages[f"/executions/{execution_id} {{}}"]
    # the hostile text is shown, as text: in the answer, the tree, the memory diff
    assert page.count("&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;") >= 3
    assert "the text says &lt;script&gt;" in page
    code_fragments = [b for w, b in pages.items() if "/nodes/" in w and '<div class="hl">' in b]
    assert code_fragments and any("&lt;script&gt;" in b for b in code_fragments)
