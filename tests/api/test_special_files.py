"""FIFOs, devices and sockets under MCP_FILES_ROOT are never opened (issue 30: a FIFO hung
`ask_about_files`): named, the tool refuses at once; inside a folder, they are skipped."""

from __future__ import annotations

import json
import os
import time

from rlm_api.database import db
from rlm_shared.models import Execution
from tests.api.conftest import make_app

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _ask_about_files(client, path: str) -> dict:
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "ask_about_files", "arguments": {"question": "q", "path": path, "wait_seconds": 0}},
    }
    response = client.post("/mcp", data=json.dumps(message), headers=MCP_HEADERS)
    data = [line[5:] for line in response.get_data(as_text=True).splitlines() if line.startswith("data:")]
    return json.loads(data[-1])["result"]


def test_a_fifo_under_the_files_root_is_refused_or_skipped_promptly(api_db_url, broker, clean, tmp_path):
    root = tmp_path / "files"
    root.mkdir()
    (root / "report.txt").write_text("The ship came to anchor in Table Bay.\n")
    os.mkfifo(root / "pipe.txt")  # nobody ever writes to it: opening it for reading would block
    app = make_app(api_db_url, mcp_files_root=str(root))
    client = app.test_client()

    started = time.monotonic()
    named = _ask_about_files(client, "pipe.txt")
    assert named["isError"] is True and "not a regular file" in named["content"][0]["text"], named

    folder = _ask_about_files(client, ".")
    assert folder["isError"] is False, folder
    with app.app_context():
        execution = db.session.get(Execution, folder["structuredContent"]["id"])
        assert execution.options["skipped"] == [{"name": "pipe.txt", "reason": "not a regular file"}]
    assert time.monotonic() - started < 20
