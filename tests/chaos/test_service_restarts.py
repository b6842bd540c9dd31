"""The broker or the database restarting mid-run loses no execution.

Redis is killed and started again empty (no persistence: every queued message and stored result
is gone); Postgres is stopped in immediate mode (a crash, as its clients see it) and started
again. The workers reconnect; lost sub-calls are sent again; trace writes wait for the database.
"""

from __future__ import annotations

from tests.chaos.cluster import submit, wait_finished
from tests.support.scripted_model import user_text
from tests.support.services import wait_for

CALLS = 30
PROGRAM = f"""```repl
answers = []
for i in range({CALLS}):
    answers.append(llm_query("r" + str(i)))
FINAL(",".join(answers))
```"""
ANSWER = ",".join(f"R{i}" for i in range(CALLS))


def is_root(request) -> bool:
    system = next((m["content"] for m in request["messages"] if m["role"] == "system"), "")
    return "Recursive Language Model" in system


def start_run(workers, client, scripted) -> str:
    scripted.responder = lambda r: PROGRAM if is_root(r) else user_text(r).upper()
    scripted.latency = 0.1
    workers.start("rlm.root", "threads", 2, "root", wait=False)
    workers.start("rlm.llm", "threads", 4, "llm")
    eid = submit(client, user_query="thirty sequential sub-calls", context="x")
    wait_for(lambda: scripted.stats()["total_calls"] >= 8, 60, what="the run to be under way")
    return eid


def check_survived(workers, chaos_app, scripted, eid) -> None:
    assert scripted.stats()["total_calls"] < 1 + CALLS  # the restart really came mid-run
    row = wait_finished(chaos_app, eid, timeout=90)
    assert row.status == "succeeded", row.error
    assert row.final_answer == ANSWER
    assert row.iterations == 1  # no sub-call failed into the model's code, so no second try
    for worker in workers.started:
        assert worker.proc.poll() is None, f"{worker.name} exited"
        assert "Unrecoverable error" not in worker.log_path.read_text(errors="replace")


def test_a_redis_restart_mid_run_loses_nothing(workers, client, chaos_app, scripted, private_services):
    eid = start_run(workers, client, scripted)
    private_services["redis"].restart()
    check_survived(workers, chaos_app, scripted, eid)


def test_a_postgres_restart_mid_run_loses_nothing(workers, client, chaos_app, scripted, private_services):
    eid = start_run(workers, client, scripted)
    private_services["postgres"].restart()
    check_survived(workers, chaos_app, scripted, eid)
