"""`kill -9` of whole worker processes mid-execution: the work is finished elsewhere, paid once.

The root test kills a root worker's main process and its prefork pool in the middle of 50
sequential sub-calls. Another worker takes the execution over when its lease lapses, replays
the recorded root turn and sub-calls from the trace, and finishes it; the model server's
counters show what was asked twice. The original message, redelivered by the broker later, is
recognised and dropped.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter

from tests.chaos.cluster import execution_row, log_text, submit, wait_finished
from tests.support.scripted_model import user_text
from tests.support.services import wait_for

SUB_CALLS = 50
SEQUENTIAL_PROGRAM = f"""```repl
answers = []
for i in range({SUB_CALLS}):
    answers.append(llm_query("q" + str(i)))
FINAL(",".join(answers))
```"""
QUESTION = re.compile(r"^q\d+$")


def is_root(request) -> bool:
    system = next((m["content"] for m in request["messages"] if m["role"] == "system"), "")
    return "Recursive Language Model" in system


def sub_prompts(server) -> list[str]:
    with server._lock:
        return [p for p in server.prompts if QUESTION.match(p)]


def holder_of(row, candidates):
    """The worker (by process group) whose process holds the execution's lease."""
    pid = int(row.worker.split(":")[1])
    group = os.getpgid(pid)
    return next(w for w in candidates if w.proc.pid == group)


def task_ids_for(worker, execution_id: str) -> list[str]:
    """Ids of the `rlm.run_execution` messages this worker received for the execution."""
    ids = []
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if "received" in line and execution_id in line:
            ids += re.findall(r"rlm\.run_execution\[([0-9a-f-]+)\] received", line)
    return ids


def dropped_delivery(worker, task_id: str) -> bool:
    """Whether the worker ran message `task_id` and it returned None (not claimed, dropped)."""
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if task_id in line and "succeeded in" in line:
            return json.loads(line).get("data", {}).get("return_value") == "None"
    return False


def test_killing_the_whole_root_worker_mid_run_loses_nothing(workers, client, chaos_app, scripted):
    scripted.responder = lambda r: SEQUENTIAL_PROGRAM if is_root(r) else user_text(r).upper()
    scripted.latency = 0.05
    roots = workers.start("rlm.root", "prefork", 1, "root", count=2, wait=False)
    workers.start("rlm.llm", "threads", 8, "llm")

    eid = submit(client, user_query="fifty sequential sub-calls", context="x")
    wait_for(lambda: len(sub_prompts(scripted)) >= 15, 60, what="15 sub-calls answered")
    victim = holder_of(execution_row(chaos_app, eid), roots)
    survivor = next(w for w in roots if w is not victim)
    answered_before_kill = len(sub_prompts(scripted))
    killed_at = workers.kill(victim)

    row = wait_finished(chaos_app, eid, timeout=60)
    recovery_seconds = time.monotonic() - killed_at
    assert row.status == "succeeded", row.error
    assert row.final_answer == ",".join(f"Q{i}" for i in range(SUB_CALLS))
    assert row.attempts == 2 and recovery_seconds < 60

    asked = Counter(sub_prompts(scripted))
    assert set(asked) == {f"q{i}" for i in range(SUB_CALLS)}
    duplicates = sum(n - 1 for n in asked.values())
    assert duplicates <= 1, asked  # sequential calls: at most the one in flight at the kill
    assert scripted.stats()["by_model"]["scripted-root"] == 1  # the root turn came from the trace
    print(
        f"\nroot worker kill -9 after {answered_before_kill} sub-calls: finished "
        f"{recovery_seconds:.1f} s later by another worker; {duplicates} sub-call(s) asked twice"
    )

    # The victim's message comes back once the visibility timeout passes; it must be dropped.
    original = task_ids_for(victim, eid)
    assert len(original) == 1
    calls_at_finish = scripted.stats()["total_calls"]
    wait_for(lambda: dropped_delivery(survivor, original[0]), 60, what="the late redelivery to be dropped")
    assert "not claimed (status succeeded); dropping this delivery" in log_text([survivor])
    assert scripted.stats()["total_calls"] == calls_at_finish
    assert execution_row(chaos_app, eid).attempts == 2


BATCH = 16
BATCH_PROGRAM = f"""```repl
answers = llm_query_batched(["p" + str(i) for i in range({BATCH})])
FINAL(",".join(answers))
```"""


def received_leaf_tasks(worker) -> int:
    return worker.log_path.read_text(errors="replace").count("rlm.llm_calls[")


def test_killing_an_llm_worker_with_calls_in_flight_still_succeeds(workers, client, chaos_app, scripted):
    scripted.responder = lambda r: BATCH_PROGRAM if is_root(r) else user_text(r).upper()
    scripted.latency = 1.0
    workers.start("rlm.root", "threads", 2, "root", wait=False)
    leaf_workers = workers.start("rlm.llm", "threads", 8, "llm", count=2)

    eid = submit(client, user_query="a batch of sixteen", context="x")
    wait_for(lambda: scripted.stats()["in_flight"] >= BATCH - 2, 30, what="the batch to be in flight")
    victim = max(leaf_workers, key=received_leaf_tasks)
    assert received_leaf_tasks(victim) > 0
    workers.kill(victim)

    row = wait_finished(chaos_app, eid, timeout=60)
    assert row.status == "succeeded", row.error
    assert row.final_answer == ",".join(f"P{i}" for i in range(BATCH))
    nodes = client.get(f"/api/executions/{eid}/trace").get_json()["nodes"]
    leaves = [n for n in nodes if n["kind"] == "llm_call"]
    assert len(leaves) == BATCH and all(n["status"] == "succeeded" for n in leaves)
    assert row.llm_calls == 1 + BATCH  # each sub-call's cost and tokens counted once
    asked = Counter(p for p in scripted.prompts if re.fullmatch(r"p\d+", p))
    assert set(asked) == {f"p{i}" for i in range(BATCH)} and max(asked.values()) <= 2


def test_a_leaf_task_delivered_twice_calls_the_model_once(workers, client, chaos_app, scripted):
    from rlm_api.database import db
    from rlm_shared.models import TraceNode
    from rlm_shared.queues import LLM_CALLS_TASK, LLM_QUEUE
    from rlm_worker.engine.tree import node_id_for
    from rlm_worker.engine.types import LLMCall

    scripted.responder = lambda r: user_text(r).upper()
    workers.start("rlm.llm", "threads", 4, "llm")
    eid = submit(client, user_query="no root worker: it stays queued", context="x")
    call = LLMCall(
        eid,
        node_id_for(eid, "000000.000000.000000"),
        node_id_for(eid, "000000"),
        "000000.000000.000000",
        1,
        0,
        "openai/scripted-sub",
        "asked once",
    )
    celery = chaos_app.extensions["celery"]
    runs = [
        celery.send_task(LLM_CALLS_TASK, args=([call.to_dict()],), queue=LLM_QUEUE).get(timeout=30)
        for _ in range(2)
    ]
    paid = ("text", "error", "input_tokens", "output_tokens", "cost_usd")
    assert [runs[1][0][k] for k in paid] == [runs[0][0][k] for k in paid]
    assert runs[0][0]["text"] == "ASKED ONCE" and runs[0][0]["cost_usd"] > 0
    assert scripted.prompts.count("asked once") == 1
    with chaos_app.app_context():
        rows = db.session.scalars(db.select(TraceNode).where(TraceNode.execution_id == eid)).all()
    assert [(r.id, r.status) for r in rows] == [(call.node_id, "succeeded")]
    assert client.post(f"/api/executions/{eid}/cancel").status_code == 200
