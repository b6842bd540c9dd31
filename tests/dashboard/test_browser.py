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
