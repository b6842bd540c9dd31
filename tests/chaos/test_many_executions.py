"""200 executions submitted at once over HTTP spread over 2 root and 2 llm worker processes.

Every one must end `succeeded` with its own answer, run exactly once (one claim, one root model
call, each sub-call asked once), and none may be lost.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests
from werkzeug.serving import make_server

from rlm_api.database import db
from rlm_shared.models import Execution
from tests.chaos.cluster import FINISHED
from tests.support.scripted_model import user_text
from tests.support.services import wait_for

EXECUTIONS = 200
PROGRAM = """```repl
parts = llm_query_batched([context + "-a", context + "-b"])
FINAL(parts[0] + "+" + parts[1])
```"""


def is_root(request) -> bool:
    system = next((m["content"] for m in request["messages"] if m["role"] == "system"), "")
    return "Recursive Language Model" in system


class ServedApp:
    """The API on a real loopback HTTP port, in a thread of this process."""

    def __init__(self, app) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ServedApp:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()


def statuses(app, ids: list[str]) -> dict[str, Execution]:
    with app.app_context():
        rows = db.session.scalars(db.select(Execution).where(Execution.id.in_(ids))).all()
        for row in rows:
            db.session.expunge(row)
    return {row.id: row for row in rows}


def test_two_hundred_concurrent_executions_all_succeed_once(workers, chaos_app, scripted):
    scripted.responder = lambda r: PROGRAM if is_root(r) else user_text(r).upper()
    # Under this load a batch may wait in the queue for seconds: no redispatch, so that any
    # sub-call asked twice is a real duplicate.
    slow_redispatch = {"SUBCALL_REDISPATCH_SECONDS": "120"}
    workers.start("rlm.root", "threads", 4, "root", count=2, wait=False, **slow_redispatch)
    workers.start("rlm.llm", "threads", 8, "llm", count=2, **slow_redispatch)

    started = time.monotonic()
    with ServedApp(chaos_app) as api, requests.Session() as http:
        http.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=32))

        def submit(i: int) -> str:
            body = {"user_query": f"execution {i}", "context": f"item{i}"}
            response = http.post(f"{api.url}/api/execute", json=body, timeout=30)
            assert response.status_code == 202, response.text
            return response.json()["execution_id"]

        with ThreadPoolExecutor(max_workers=32) as pool:
            ids = list(pool.map(submit, range(EXECUTIONS)))
    assert len(set(ids)) == EXECUTIONS

    def all_finished():
        rows = statuses(chaos_app, ids)
        return rows if sum(r.status in FINISHED for r in rows.values()) == EXECUTIONS else None

    rows = wait_for(all_finished, 90, interval=0.25, what=f"{EXECUTIONS} executions to finish")
    wall_seconds = time.monotonic() - started

    for i, eid in enumerate(ids):
        row = rows[eid]
        assert row.status == "succeeded", (i, row.status, row.error)
        assert row.final_answer == f"ITEM{i}-A+ITEM{i}-B"
        assert row.attempts == 1
    sub_prompts = Counter(p for p in scripted.prompts if p.startswith("item"))
    assert scripted.stats()["by_model"] == {"scripted-root": EXECUTIONS, "scripted-sub": 2 * EXECUTIONS}
    assert len(sub_prompts) == 2 * EXECUTIONS and set(sub_prompts.values()) == {1}
    print(f"\n{EXECUTIONS} executions over HTTP on 2 root + 2 llm workers: {wall_seconds:.1f} s wall time")
