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


def copy_first_sentence(request: dict) -> str:
    """A sub-call that copies the first sentence of the passage it was given (a backed answer)."""
    prompt = str(request["messages"][-1]["content"])
    passage = prompt.split('"""', 1)[-1].strip()
    return passage.split(". ", 1)[0] + "."


def fits(page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def test_every_page_fits_a_phone_and_a_desktop(stack_app, stack_client, scripted, live_server, browser):
    """No page scrolls sideways at 360 px or at 1400 px (tables scroll in their own box); a
    screenshot of each page at each width is kept in tests/artifacts/ for a person to look at."""
    scripted.responder = copy_first_sentence
    session = stack_client.post(
        "/api/sessions", json={"name": "The Devil's Dictionary, A and B", "context": SAMPLE.read_text()}
    ).get_json()
    started = stack_client.post(
        "/api/execute",
        json={"user_query": "How does Bierce define ABSURDITY?", "session_id": session["id"], "strategy": "search"},
    ).get_json()
    execution_id = started["id"]
    assert wait_finished(stack_app, execution_id).status == "succeeded"
    trace = stack_client.get(f"/api/executions/{execution_id}/trace").get_json()["nodes"]
    code_id = next(n["id"] for n in trace if n["kind"] == "code")
    pages = {
        "executions": "/executions",
        "execution": f"/executions/{execution_id}",
        "node": f"/executions/{execution_id}/nodes/{code_id}",
        "sessions": "/sessions",
        "session": f"/sessions/{session['id']}",
        "stats": "/stats",
        "not_found": "/executions/" + "0" * 32,
    }
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (PHONE, DESKTOP):
        page = browser.new_page(viewport={"width": width, "height": 900})
        for name, path in pages.items():
            page.goto(f"{live_server}{path}")
            scroll_width, inner_width = fits(page)
            page.screenshot(path=str(ARTIFACTS / f"dashboard_{name}_{width}.png"), full_page=True)
            assert scroll_width <= inner_width, f"{path} is {scroll_width} px wide at {width} px"
        page.close()

    page = browser.new_page(viewport={"width": DESKTOP, "height": 900})
    page.goto(f"{live_server}/executions/{execution_id}")
    # Each sub-call row says which passage it read: where in the text, and its first words.
    labels = page.locator("#execution-tree .leaf:has(.k-llm_call) .node-link").all_inner_texts()
    assert len(labels) >= 2 and len(set(labels)) == len(labels), labels
    assert all(" · chars " in label and "Question" not in label for label in labels), labels
    # The strategy's code opens on its own program; the shared helpers are folded away.
    page.goto(f"{live_server}/executions/{execution_id}/nodes/{code_id}")
    expect(page.locator(".node-detail h4").first).to_have_text("Program")
    expect(page.locator(".node-detail .hl").first).to_contain_text("search: find the passages")
    helpers = page.locator(".node-detail details.helpers")
    expect(helpers).not_to_have_attribute("open", "")
    expect(helpers.locator(".hl")).to_be_hidden()
    # A strategy is not a model: the stats page does not list it as one.
    page.goto(f"{live_server}/stats")
    expect(page.locator("table.list")).not_to_contain_text("(strategy")
    assert page.request.get(f"{live_server}/favicon.ico").status == 200
    page.close()
