"""The executions list and one execution's page, over rows written through the real models and sink."""

from __future__ import annotations

import html as htmllib
import re
from datetime import timedelta

from pygments.token import STANDARD_TYPES, Keyword, String

from dashboard.highlight import STYLESHEET, stylesheet
from rlm_api.database import db
from rlm_shared.models import Execution
from rlm_shared.trace_sink import SqlTraceSink
from rlm_worker.engine.tree import TreeCursor
from rlm_worker.engine.types import TraceNode as EngineNode
from tests.dashboard.builders import CODE, T0, at, make_execution, make_session
from tests.dashboard.conftest import FLOWER_URL


def html(response) -> str:
    return response.get_data(as_text=True)


def assert_highlighted(body: str, code: str) -> None:
    """The code is all there, escaped, with its keywords and strings in Pygments token spans.

    Checked through Pygments' own token classes, not its exact markup, which changes between releases.
    """
    block = body.split('<div class="hl">', 1)[1].split("</div>", 1)[0]
    text = re.sub(r"<[^>]*>", "", block)
    assert "<" in code and " < " not in block and "&lt;" in text  # the source's `<` is escaped
    assert htmllib.unescape(text).strip() == code.strip()
    token_of = {css: token for token, css in STANDARD_TYPES.items() if css}
    spans = [
        (token_of[css], htmllib.unescape(text))
        for css, text in re.findall(r'<span class="([^"]+)">([^<]*)</span>', block)
    ]
    assert {css for css in re.findall(r'<span class="([^"]+)">', block)} <= set(token_of)
    assert {"for", "if"} <= {text for token, text in spans if token in Keyword}
    assert any(token in String and "date" in text for token, text in spans)


def test_executions_list_is_empty_at_first(client):
    page = client.get("/executions")
    assert page.status_code == 200
    assert "No executions yet" in html(page)
    assert client.get("/").status_code == 200


def test_executions_list_shows_columns_newest_first_and_links_flower(app, client):
    session_id = make_session(app, name="Annual report")
    old = make_execution(app, user_query="older question", created_at=T0)
    new = make_execution(
        app, user_query="newer question", created_at=T0 + timedelta(hours=1), session_id=session_id
    )
    body = html(client.get("/executions"))
    assert body.index("newer question") < body.index("older question")
    row = body[body.index("newer question") :].split("</tr>")[0]
    for expected in ("openai/gpt-4o", "9.0 s", "1,500", "$0.0123", "Annual report", "2025-03-01 13:00:00"):
        assert expected in row, expected
    assert 'class="badge st-succeeded"' in body
    assert f"/executions/{new.execution_id}" in body and f"/executions/{old.execution_id}" in body
    assert f'href="{FLOWER_URL}"' in body


def test_executions_filter_by_status_and_session(app, client):
    session_id = make_session(app)
    make_execution(app, trace=False, user_query="the failed one", status="failed")
    make_execution(app, trace=False, user_query="the session one", session_id=session_id)
    failed = html(client.get("/executions?status=failed"))
    assert "the failed one" in failed and "the session one" not in failed
    in_session = html(client.get(f"/executions?session={session_id}"))
    assert "the session one" in in_session and "the failed one" not in in_session
    none = html(client.get("/executions?status=cancelled"))
    assert "No executions match these filters" in none


def test_executions_are_paginated(app, client):
    for i in range(53):
        make_execution(
            app, trace=False, user_query=f"question number {i:02d}", created_at=T0 + timedelta(minutes=i)
        )
    first = html(client.get("/executions"))
    assert "question number 52" in first and "question number 02" not in first
    assert "Page 1 of 2" in first and "page=2" in first
    second = html(client.get("/executions?page=2"))
    assert "question number 02" in second and "question number 52" not in second
    assert first.count("question number") == 50 and second.count("question number") == 3
    assert "There is no page 9" in html(client.get("/executions?page=9"))


def test_execution_page_shows_header_tree_timeline_costs_and_memory(app, client):
    built = make_execution(app, guard_hit="max_cost_usd", forced_final=True)
    body = html(client.get(f"/executions/{built.execution_id}"))
    # header: status, answer, totals and the guard that stopped it
    assert "2023-04-01" in body and "$0.0123" in body and "1,200 / 300" in body
    assert "<code>max_cost_usd</code>" in body and "the answer was forced" in body
    # the tree: every node, with its kind, model and cost; errors marked
    for node in built.nodes.values():
        assert f'id="n-{node.id}"' in body
    assert "iteration 1" in body and "iteration 2" in body
    assert "RateLimitError: 429 slow down" in body
    assert re.search(rf'<li class="node failed" id="n-{built.nodes["bad"].id}"', body)
    assert "1 ✗ below" in body
    # open above tree depth 2, collapsed from there on
    assert f'<details id="d-{built.nodes["root"].id}" open>' in body
    assert f'<details id="d-{built.nodes["it1"].id}" open>' in body
    assert f'<details id="d-{built.nodes["code"].id}">' in body
    # timeline: the two sub-calls overlap
    assert "Up to <strong>2 sub-calls</strong> were running at once" in body
    assert body.count('class="wf-bar') == 5
    # cost by model and by depth
    costs = body[body.index('id="execution-costs"') :]
    assert (
        "openai/gpt-4o-mini" in costs and "depth 1" in costs and "$0.0113" in costs and "$0.001000" in costs
    )
    # memory: a line added (green) and one removed (red) between iterations
    memory = body[body.index('id="execution-memory"') :]
    assert '<span class="dl add">+ answer: 2023-04-01</span>' in memory
    assert '<span class="dl del">- old guess: 2022</span>' in memory
    assert "plan" in memory and "removed" in memory
    # finished: no polling
    assert "hx-trigger" not in body


def test_node_detail_is_a_fragment_for_htmx_and_a_page_without(app, client):
    built = make_execution(app)
    code = built.nodes["code"]
    url = f"/executions/{built.execution_id}/nodes/{code.id}"
    fragment = html(client.get(url, headers={"HX-Request": "true"}))
    assert "<html" not in fragment
    assert_highlighted(fragment, CODE)
    assert "3 notes" in fragment
    # a code cell shows the memory change of its iteration
    assert "at the end of this iteration" in fragment and "+ old guess: 2022" in fragment
    page = html(client.get(url))
    assert "<html" in page and "List every date" in page
    assert_highlighted(page, CODE)


def test_long_prompts_are_folded_behind_an_expand_control(app, client):
    built = make_execution(app)
    ok = built.nodes["ok"]
    body = html(client.get(f"/executions/{built.execution_id}/nodes/{ok.id}", headers={"HX-Request": "true"}))
    assert '<details class="fold">' in body and "Show all 3,012 characters" in body
    assert "x" * 3000 in body  # the whole text is there once expanded


def test_failed_node_detail_shows_its_error(app, client):
    built = make_execution(app)
    bad = built.nodes["bad"]
    body = html(
        client.get(f"/executions/{built.execution_id}/nodes/{bad.id}", headers={"HX-Request": "true"})
    )
    assert '<pre class="error-box">RateLimitError: 429 slow down</pre>' in body
    assert 'class="badge st-failed"' in body


def test_unknown_ids_get_the_404_page(app, client):
    built = make_execution(app)
    for url in (
        "/executions/nope",
        "/executions/nope/live",
        f"/executions/{built.execution_id}/nodes/nope",
        "/executions/nope/nodes/nope",
        "/sessions/nope",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "<h1>Not found</h1>" in html(response), url
    assert client.post("/sessions/nope/executions", data={"user_query": "q"}).status_code == 404


def test_execution_without_trace_yet(app, client):
    built = make_execution(
        app, trace=False, status="queued", started_at=None, finished_at=None, final_answer=None
    )
    body = html(client.get(f"/executions/{built.execution_id}"))
    assert "No trace yet: the execution is queued" in body
    assert "Nothing has run yet" in body and "No model calls yet" in body
    assert 'hx-trigger="every 1500ms"' in body


def test_live_fragment_sends_news_only_when_something_changed(app, client):
    built = make_execution(app, status="running", finished_at=None, final_answer=None)
    url = f"/executions/{built.execution_id}/live"
    first = client.get(url, headers={"HX-Request": "true"})
    assert first.status_code == 200
    body = html(first)
    assert "<html" not in body
    version = re.search(r'hx-get="[^"]*/live\?v=([^"]+)"', body).group(1)
    assert 'hx-swap-oob="true"' in body  # the tree, timeline, costs and memory come out of band
    assert client.get(f"{url}?v={version}").status_code == 204

    with app.app_context():  # a third sub-call starts under the code cell
        code = built.nodes["code"]
        seq, path, node_id = TreeCursor(built.execution_id, code).next(3)[2]
        new_call = EngineNode(
            execution_id=built.execution_id,
            kind="llm_call",
            path=path,
            depth=1,
            seq=seq,
            parent_id=code.id,
            id=node_id,
            model="openai/gpt-4o-mini",
            prompt="a brand new sub-call",
            started_at=at(6),
        )
        SqlTraceSink(db.engine).node_started(new_call)
    news = client.get(f"{url}?v={version}")
    assert news.status_code == 200 and "a brand new sub-call" in html(news)
    assert 'hx-trigger="every 1500ms"' in html(news)

    with app.app_context():
        db.session.get(Execution, built.execution_id).status = "succeeded"
        db.session.commit()
    done = html(client.get(f"{url}?v={version}"))
    assert "hx-trigger" not in done and "st-succeeded" in done


def test_stylesheet_for_highlighting_is_current():
    assert STYLESHEET.read_text(encoding="utf-8") == stylesheet()


def test_a_compaction_node_shows_in_the_tree_with_its_summary(app, client):
    built = make_execution(app)
    with app.app_context():
        root = next(n for n in built.nodes.values() if n.kind == "root")
        cursor = TreeCursor(built.execution_id, root)
        cursor.next(sum(1 for n in built.nodes.values() if n.parent_id == root.id))  # after them
        node = cursor.child(
            "compaction",
            0,
            model="openai/gpt-4o",
            prompt="Summarise your progress so far",
            response="Summary: three dates found so far",
            stdout="3,000 tokens reached 2,550: 6 messages replaced by a summary",
            status="succeeded",
            input_tokens=2900,
            output_tokens=20,
            started_at=at(6),
            finished_at=at(7),
        )
        sink = SqlTraceSink(db.engine)
        sink.node_started(node)
        sink.node_finished(node)
    page = html(client.get(f"/executions/{built.execution_id}"))
    assert '<span class="kind k-compaction">compaction</span>' in page
    detail = html(client.get(f"/executions/{built.execution_id}/nodes/{node.id}", headers={"HX-Request": "true"}))
    assert "Summary: three dates found so far" in detail and "6 messages replaced by a summary" in detail
