"""A real browser over a live server and a real trace: expand, select, read; nothing hostile runs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

from tests.dashboard.real_runs import hostile_responder, run_hostile_execution, wait_finished

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def live_server(stack_app):
    server = make_server("127.0.0.1", 0, stack_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard-live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_execution_page_in_a_browser(stack_app, stack_client, scripted, live_server, browser):
    scripted.responder = hostile_responder
    _, execution_id = run_hostile_execution(stack_client)
    assert wait_finished(stack_app, execution_id).status == "succeeded"

    page = browser.new_page(viewport={"width": 1366, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{live_server}/executions/{execution_id}")
    expect(page.locator("#execution-header .badge")).to_have_text("succeeded")

    # The code cell sits at tree depth 2: collapsed, its sub-calls hidden until it is expanded.
    code_node = page.locator("#execution-tree li.node").filter(
        has=page.locator(":scope > details > summary .k-code")
    )
    code_details = code_node.first.locator(":scope > details")
    sub_call = code_details.locator(".k-llm_call").first
    expect(code_details).not_to_have_attribute("open", "")
    expect(sub_call).to_be_hidden()
    code_details.locator(":scope > summary .kind").click()
    expect(sub_call).to_be_visible()

    # Selecting it loads its detail (htmx, no page load): highlighted code and the memory diff.
    page.evaluate("window.__samePage = true")
    code_details.locator(":scope > summary .node-link").click()
    code = page.locator("#detail .hl")
    expect(code).to_be_visible()
    expect(code.locator("span.nn, span.n").first).to_be_visible()
    expect(code).to_contain_text("llm_query_batched")
    added = page.locator("#detail .dl.add")
    expect(added.first).to_contain_text("the text says <script>alert('xss')</script>")
    assert page.evaluate("window.__samePage") is True
    expect(code_node.first).to_have_class("node selected")

    # The hostile text is on screen as text; it never became elements or ran.
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("main script").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard_execution.png"), full_page=False)
    assert dialogs == []
    page.close()


def test_running_execution_updates_without_reload(stack_app, stack_client, scripted, live_server, browser):
    scripted.responder = hostile_responder
    scripted.latency = 0.6  # three model turns in flight for a couple of seconds
    _, execution_id = run_hostile_execution(stack_client, query="slow question")
    page = browser.new_page()
    page.goto(f"{live_server}/executions/{execution_id}")
    page.evaluate("window.__samePage = true")
    header = page.locator("#execution-header")
    expect(header).to_have_attribute("hx-trigger", "every 1500ms")
    expect(header.locator(".badge")).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("#execution-tree .k-llm_call")).to_have_count(2)
    expect(page.locator("#execution-memory .dl.add").first).to_be_visible()
    assert page.evaluate("window.__samePage") is True
    assert page.locator("#execution-header[hx-trigger]").count() == 0  # polling stopped
    wait_finished(stack_app, execution_id)
    page.close()


PHONE, DESKTOP = 360, 1400
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "devils_dictionary_a_b.txt"
QUESTION = "How does Bierce define ABSURDITY?"


def make_strategy_execution(app, session_id: str) -> tuple[str, str]:
    """What `rlm run --strategy search` over the sample leaves, offline: a strategy's code cell
    and four sub-calls with one template, each over its own passage, all at $0."""
    from rlm_api.database import db
    from rlm_shared.models import Execution
    from rlm_shared.strategies import get_strategy
    from rlm_shared.strategies.common import EXTRACT_PROMPT
    from rlm_shared.trace_sink import SqlTraceSink
    from rlm_worker.engine.tree import TreeCursor
    from tests.dashboard.builders import at

    text = SAMPLE.read_text()
    with app.app_context():
        from rlm_shared.contexts import store_context

        execution = Execution(
            session_id=session_id, context_id=store_context(text).id, user_query=QUESTION,
            root_model="(strategy search)", sub_model="local/smollm2", options={"strategy": "search"},
            offline=True, status="succeeded", final_answer="ABSURDITY, n. A statement or belief manifestly "
            "inconsistent with one's own opinion.", created_at=at(0), started_at=at(0), finished_at=at(12),
            iterations=1, total_input_tokens=4000, total_output_tokens=80, llm_calls=4, sub_calls=4,
        )  # fmt: skip
        db.session.add(execution)
        db.session.commit()
        eid = execution.id
        root = TreeCursor(eid, None).child(
            "root",
            0,
            model="(strategy search)",
            prompt=QUESTION,
            status="succeeded",
            started_at=at(0),
            finished_at=at(12),
        )
        step = TreeCursor(eid, root).child(
            "iteration",
            0,
            model="(strategy search)",
            status="succeeded",
            prompt="strategy search program",
            started_at=at(0),
            finished_at=at(12),
        )
        code = TreeCursor(eid, step).child("code", 0, code=get_strategy("search"), status="succeeded",
                                           stdout="search: asking the 4 best windows", started_at=at(0),
                                           finished_at=at(12))  # fmt: skip
        calls = TreeCursor(eid, code)
        nodes = [root, step, code]
        for i, start in enumerate((1200, 9400, 17050, 26000)):
            nodes.append(calls.child(
                "llm_call", 1, model="local/smollm2", status="succeeded",
                prompt=EXTRACT_PROMPT.format(question=QUESTION, text=text[start : start + 800]),
                response="NONE", input_tokens=1000, output_tokens=20,
                started_at=at(1 + i * 2.5), finished_at=at(3 + i * 2.5),
            ))  # fmt: skip
        SqlTraceSink(db.engine).nodes_recorded(nodes)
        return eid, code.id


@pytest.fixture()
def page_server(app):
    """The dashboard over the page tests' database (no workers: the traces are written directly)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard-page-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def fits(page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def test_every_page_fits_a_phone_and_a_desktop(app, page_server, browser):
    """No page scrolls sideways at 360 px or at 1400 px (tables scroll in their own box); a
    screenshot of each page at each width is kept in tests/artifacts/ for a person to look at."""
    from tests.dashboard.builders import make_execution, make_session

    session_id = make_session(app, name="The Devil's Dictionary, A and B", context=SAMPLE.read_text())
    make_execution(app, session_id=session_id, user_query="List every word defined under B, with its page")
    execution_id, code_id = make_strategy_execution(app, session_id)
    pages = {
        "executions": "/executions",
        "execution": f"/executions/{execution_id}",
        "node": f"/executions/{execution_id}/nodes/{code_id}",
        "sessions": "/sessions",
        "session": f"/sessions/{session_id}",
        "stats": "/stats",
        "not_found": "/executions/" + "0" * 32,
    }
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (PHONE, DESKTOP):
        page = browser.new_page(viewport={"width": width, "height": 900})
        for name, path in pages.items():
            page.goto(f"{page_server}{path}")
            scroll_width, inner_width = fits(page)
            page.screenshot(path=str(ARTIFACTS / f"dashboard_{name}_{width}.png"), full_page=True)
            assert scroll_width <= inner_width, f"{path} is {scroll_width} px wide at {width} px"
        page.close()

    page = browser.new_page(viewport={"width": DESKTOP, "height": 900})
    page.goto(f"{page_server}/executions/{execution_id}")
    # Each sub-call row says which passage it read: where in the text, and its first words.
    labels = page.locator("#execution-tree .leaf:has(.k-llm_call) .node-link").all_text_contents()
    assert len(labels) == 4 and len(set(labels)) == 4, labels
    assert labels[0].startswith("#1 · chars 1,200–2,000 · “"), labels
    assert all("Question" not in label for label in labels), labels
    expect(page.locator(".offline-note")).to_contain_text("local model local/smollm2")
    # All $0: no cost share to give.
    expect(page.locator("#execution-costs td.share").first).to_have_text("—")
    # The strategy's code opens on its own program; the shared helpers are folded away.
    page.goto(f"{page_server}/executions/{execution_id}/nodes/{code_id}")
    expect(page.locator(".node-detail h4").first).to_have_text("Program")
    expect(page.locator(".node-detail .hl").first).to_contain_text("search: find the sentences")
    helpers = page.locator(".node-detail details.helpers")
    expect(helpers).not_to_have_attribute("open", "")
    expect(helpers.locator(".hl")).to_be_hidden()
    # A strategy is not a model: the stats page does not list it as one.
    page.goto(f"{page_server}/stats")
    expect(page.locator("table.list")).not_to_contain_text("(strategy")
    expect(page.locator("table.list")).to_contain_text("local/smollm2")
    assert page.request.get(f"{page_server}/favicon.ico").status == 200
    page.close()


def test_the_executions_list_names_each_input_and_shows_it_scrolls_on_a_phone(app, page_server, browser):
    """#32: the same question on two inputs could not be told apart; at 360 px the table was cut at
    the right edge with no sign that it scrolls."""
    from tests.dashboard.builders import make_execution

    question = "Which ports did the ship call at?"
    make_execution(app, user_query=question, context="Log of the Northern Tern, 1887. Anchored in Table Bay.")
    make_execution(
        app, user_query=question, context=[{"name": "voyage-1888.pdf", "format": "pdf", "text": "x"}]
    )
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (DESKTOP, PHONE):
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{page_server}/executions")
        inputs = page.locator("table.list td.input").all_text_contents()
        assert any("Log of the Northern Tern" in text for text in inputs), inputs
        assert any("voyage-1888.pdf" in text and '"name"' not in text for text in inputs), inputs
        assert all("characters" in text for text in inputs), inputs  # and its size
        hint = page.locator(".scroll-hint").first
        box = page.locator(".scroll-shadow").first
        overflows = box.evaluate("el => el.scrollWidth > el.clientWidth")
        page.screenshot(path=str(ARTIFACTS / f"dashboard_executions_input_{width}.png"), full_page=False)
        if width == PHONE:
            assert overflows and hint.is_visible()  # the table is wider than the phone, and says so
            assert "sideways" in hint.inner_text()
            shadow = box.evaluate("el => getComputedStyle(el).backgroundImage")
            assert "radial-gradient" in shadow  # the edge shadow that shows more columns
        else:
            assert not hint.is_visible()
        page.close()


def test_a_cancelled_run_is_neutral_and_its_timeline_draws_waits_apart(app, page_server, browser):
    """A user's cancel: a grey note (no guard, no error box); calls that only waited in the queue
    are hatched outlines, not full-length red bars. The screenshot is kept for a person to look at."""
    from rlm_api.database import db
    from rlm_shared.models import TraceNode
    from tests.dashboard.builders import at, make_execution

    built = make_execution(
        app, status="cancelled", guard_hit="cancelled", error="interrupted from the terminal (Ctrl-C)",
        final_answer=None, finished_at=at(9),
    )  # fmt: skip
    code_id = built.nodes["code"].id
    with app.app_context():
        for i, (started, finished, status) in enumerate(
            [(5, 7, "succeeded"), (7, 9, "cancelled"), (None, 9, "cancelled"), (None, 9, "cancelled")]
        ):
            db.session.add(
                TraceNode(
                    id=f"w{i:031d}", execution_id=built.execution_id, parent_id=code_id, kind="llm_call",
                    path=f"{built.nodes['code'].path}.00009{i}", depth=1, model="local/smollm2", status=status,
                    queued_at=at(4), started_at=at(started) if started is not None else None, finished_at=at(finished),
                    error=None if status == "succeeded" else "sub-call cancelled: interrupted",
                )
            )  # fmt: skip
        db.session.commit()
    page = browser.new_page(viewport={"width": DESKTOP, "height": 1100})
    page.goto(f"{page_server}/executions/{built.execution_id}")
    expect(page.locator(".cancelled-note")).to_contain_text("Cancelled: interrupted from the terminal")
    assert page.locator("#execution-header .guard").count() == 0
    assert page.locator("#execution-header .error-box").count() == 0
    assert page.locator(".wf-wait.cancelled").count() == 2  # never ran: a wait, no bar
    assert page.locator(".wf-bar.wf-cancelled").count() == 1  # ran, then cancelled: grey
    page.locator("#execution-waterfall").screenshot(path=str(ARTIFACTS / "dashboard_timeline_cancelled.png"))
    page.locator("#execution-header").screenshot(path=str(ARTIFACTS / "dashboard_header_cancelled.png"))
    page.close()
