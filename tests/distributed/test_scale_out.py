"""Scale-out properties with real worker processes: no deadlock at pool size 1, fair sharing of
the llm pool between executions, and a fleet-wide cap on sub-calls in flight."""

from __future__ import annotations

import threading
import time
from collections import Counter

from rlm_api.database import db
from rlm_shared.models import Execution
from tests.chaos.cluster import FINISHED, submit
from tests.support.scripted_model import user_text
from tests.support.services import wait_for

RECURSIVE_PROGRAM = """```repl
if len(context) <= 2:
    FINAL(llm_query(context))
half = len(context) // 2
checks = llm_query_batched(["check-" + context[:half], "check-" + context[half:]])
parts = rlm_query_batched(["upper"] * 2, contexts=[context[:half], context[half:]])
FINAL("".join(parts))
```"""


def is_root(request) -> bool:
    system = next((m["content"] for m in request["messages"] if m["role"] == "system"), "")
    return "Recursive Language Model" in system


def finished(app, execution_id: str, timeout: float) -> Execution:
    def done():
        with app.app_context():
            row = db.session.get(Execution, execution_id)
            db.session.expunge(row)
        return row if row.status in FINISHED else None

    return wait_for(done, timeout, interval=0.1, what=f"execution {execution_id}")


class InFlight:
    """A responder for sub-calls that takes `seconds` and counts calls in flight per group."""

    def __init__(self, seconds: float, group=lambda prompt: "all") -> None:
        self.seconds, self.group = seconds, group
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, prompt: str) -> str:
        key = self.group(prompt)
        with self._lock:
            self.now[key] += 1
            self.peak[key] = max(self.peak[key], self.now[key])
        time.sleep(self.seconds)
        with self._lock:
            self.now[key] -= 1
        return prompt.upper()


def test_every_pool_at_size_one_runs_a_depth_three_recursion_with_batched_children(
    scale_workers, scale_client, scale_app, scripted
):
    scripted.responder = lambda r: RECURSIVE_PROGRAM if is_root(r) else user_text(r).upper()
    scale_workers.start("rlm.root", "prefork", 1, "root1", wait=False)
    scale_workers.start("rlm.llm", "threads", 1, "llm1")
    text = "abcdefghijklmnop"
    eid = submit(scale_client, user_query="upper-case it", context=text, options={"max_recursion_depth": 3})

    row = finished(scale_app, eid, timeout=120)
    assert row.status == "succeeded", row.error
    assert row.final_answer == text.upper()
    nodes = scale_client.get(f"/api/executions/{eid}/trace").get_json()["nodes"]
    children = [n for n in nodes if n["kind"] == "child_rlm"]
    assert len(children) == 2 + 4 + 8 and {n["depth"] for n in children} == {1, 2, 3}
    leaves = [n for n in nodes if n["kind"] == "llm_call"]
    assert len(leaves) == 2 * (1 + 2 + 4) + 8  # the checks of every splitting agent, and the leaves


def test_one_big_fan_out_does_not_starve_another_execution(scale_workers, scale_client, scale_app, scripted):
    sub = InFlight(0.3, group=lambda prompt: prompt[0])
    scripted.responder = lambda r: (
        fence(user_text(r).split("The question:\n")[1].split("\n")[0]) if is_root(r) else sub(user_text(r))
    )
    scale_workers.start("rlm.root", "threads", 2, "root", wait=False, SUBCALL_INFLIGHT_PER_EXECUTION="4")
    scale_workers.start("rlm.llm", "threads", 8, "llm")

    big = submit(scale_client, user_query=fan_out("a", 16, rounds=2), context="x")
    wait_for(lambda: sub.now["a"] > 0, 30, what="the big fan-out to start")
    small = submit(scale_client, user_query=fan_out("b", 2), context="x")

    small_row = finished(scale_app, small, timeout=60)
    big_row = finished(scale_app, big, timeout=60)
    assert small_row.status == big_row.status == "succeeded"
    assert sub.peak["a"] == 4  # the big one never had more than its share in flight
    assert small_row.finished_at < big_row.finished_at  # the small one went past it
    assert (small_row.finished_at - small_row.started_at).total_seconds() < 3


def test_a_fleet_wide_cap_bounds_sub_calls_in_flight(scale_workers, scale_client, scale_app, scripted):
    sub = InFlight(0.2)
    scripted.responder = lambda r: (
        fence(user_text(r).split("The question:\n")[1].split("\n")[0]) if is_root(r) else sub(user_text(r))
    )
    scale_workers.start("rlm.root", "threads", 4, "root", wait=False)
    scale_workers.start("rlm.llm", "threads", 8, "llm", count=2, SUBCALL_CONCURRENCY_LIMIT="3")

    runs = [submit(scale_client, user_query=fan_out(p, 12), context="x") for p in "cd"]
    for eid in runs:
        assert finished(scale_app, eid, timeout=60).status == "succeeded"
    assert sub.peak["all"] == 3  # 16 llm threads on two processes, 24 calls, never more than 3 at once


def fan_out(prefix: str, count: int, rounds: int = 1) -> str:
    """A root program (carried in the question) of `rounds` batches of `count` sub-calls."""
    return (
        f"out = []; [out.extend(llm_query_batched(['{prefix}' + str(r) + '-' + str(i) "
        f"for i in range({count})])) for r in range({rounds})]; FINAL(len(out))"
    )


def fence(code: str) -> str:
    return f"```repl\n{code}\n```"
