"""Cancellation and the time limit stop everything of an execution within seconds.

"Everything" is the root task, its REPL process (even in the middle of a busy cell), and every
sub-call still queued or running: after the stop, no new call reaches the model.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis

from rlm_shared.queues import LLM_QUEUE
from tests.chaos.cluster import execution_row, submit, wait_finished
from tests.support.scripted_model import user_text
from tests.support.services import wait_for

BATCHES_PROGRAM = """```repl
out = []
for i in range(40):
    out += llm_query_batched(["c" + str(i) + "-" + str(j) for j in range(4)])
FINAL(str(len(out)))
```"""

BUSY_PROGRAM = """```repl
n = 0
while True:
    n += 1
```"""

WAITING_PROGRAM = """```repl
while True:
    llm_query("slow")
```"""

WARM_UP_PROGRAM = """```repl
FINAL(llm_query("warm"))
```"""


def is_root(request) -> bool:
    system = next((m["content"] for m in request["messages"] if m["role"] == "system"), "")
    return "Recursive Language Model" in system


def calls_started(server) -> int:
    """Model calls finished or in flight right now."""
    with server._lock:
        return server.total_calls + server.in_flight


def leaf_work_drained(celery, private_services, worker) -> bool:
    """No sub-call message left in the queue, reserved by the worker, or running on it."""
    broker = redis.Redis.from_url(private_services["redis"].url(0))
    if broker.llen(LLM_QUEUE):
        return False
    inspect = celery.control.inspect(destination=[worker.name], timeout=1.0)
    active, reserved = inspect.active() or {}, inspect.reserved() or {}
    return worker.name in active and not active[worker.name] and not reserved.get(worker.name)


def sandbox_processes_of(worker) -> list[int]:
    """REPL processes started by the worker's processes that are still alive."""
    group = {worker.proc.pid}
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) in group and b"rlm_worker.sandbox.child" in cmdline:
            found.append(int(stat.parent.name))
    return found


def test_cancel_stops_the_root_and_every_queued_or_running_sub_call(
    workers, client, chaos_app, scripted, private_services
):
    scripted.responder = lambda r: BATCHES_PROGRAM if is_root(r) else user_text(r).upper()
    scripted.latency = 0.3
    (root,) = workers.start("rlm.root", "threads", 2, "root", wait=False)
    (leaf,) = workers.start("rlm.llm", "threads", 4, "llm")
    eid = submit(client, user_query="many batches", context="x")
    wait_for(lambda: scripted.stats()["total_calls"] >= 9, 60, what="some batches answered")

    cancelled_at = time.monotonic()
    response = client.post(f"/api/executions/{eid}/cancel")
    assert response.status_code == 200 and response.get_json()["status"] == "cancelled"

    def root_stopped():
        row = execution_row(chaos_app, eid)
        return row if row.lease_expires_at is None and row.iterations else None

    row = wait_for(root_stopped, 5, interval=0.05, what="the root task to stop")
    # A leaf that read the status just before the cancel committed may still start its call in
    # that instant; once the root has stopped, nothing may reach the model any more.
    started_by_stop = calls_started(scripted)
    stopped_seconds = time.monotonic() - cancelled_at
    assert row.status == "cancelled" and row.llm_calls >= 9
    wait_for(lambda: leaf_work_drained(chaos_app.extensions["celery"], private_services, leaf), 30)
    assert calls_started(scripted) <= started_by_stop  # no sub-call reached the model afterwards
    assert not sandbox_processes_of(root)
    print(f"\ncancel: the root task stopped {stopped_seconds:.2f} s after the request")


def test_the_time_limit_stops_busy_cells_and_sub_call_waits(
    workers, client, chaos_app, scripted, private_services
):
    """Two runs with a 4 s limit: one spinning in a cell, one waiting on slow sub-calls."""
    starts: list[tuple[str, float]] = []

    def responder(request):
        text = user_text(request)
        if is_root(request):
            return (
                WARM_UP_PROGRAM if "warm-up" in text else BUSY_PROGRAM if "spin" in text else WAITING_PROGRAM
            )
        starts.append((text, time.time()))
        if text == "slow":
            time.sleep(1.5)
        return "ok"

    scripted.responder = responder
    (root,) = workers.start("rlm.root", "threads", 2, "root", wait=False)
    (leaf,) = workers.start("rlm.llm", "threads", 4, "llm")
    warm = submit(client, user_query="warm-up", context="x")  # first calls of fresh processes are slow
    assert wait_finished(chaos_app, warm, timeout=60).status == "succeeded"
    starts.clear()

    limit = 4
    options = {"timeout_seconds": limit, "cell_cpu_seconds": 60}
    spin = submit(client, user_query="spin", context="x", options=options)
    wait = submit(client, user_query="wait", context="x", options=options)
    for eid in (spin, wait):
        row = wait_finished(chaos_app, eid, timeout=limit + 5 + 20)
        late = (row.finished_at - row.started_at).total_seconds() - limit
        assert row.status == "timed_out", (row.status, row.error)
        assert late < 5, f"timed out {late:.1f} s after the limit"
        print(f"\ntimeout: status timed_out {late:.2f} s after the limit")
    wait_for(lambda: leaf_work_drained(chaos_app.extensions["celery"], private_services, leaf), 30)

    spun = client.get(f"/api/executions/{spin}/trace").get_json()["nodes"]
    (cell,) = [n for n in spun if n["kind"] == "code"]
    # The busy REPL was killed, not left to run to its CPU limit: the cell says what stopped it and
    # keeps the REPL's own report with its stderr.
    assert cell["error"].startswith("stopped by guard timeout_seconds"), cell["error"]
    assert "killed" in cell["stderr"], cell["stderr"]
    stopped_at = execution_row(chaos_app, wait).finished_at.timestamp()
    assert [p for p, _ in starts].count("slow") >= 2
    assert all(at <= stopped_at for _, at in starts)  # no sub-call reached the model after the stop
    assert not sandbox_processes_of(root)
