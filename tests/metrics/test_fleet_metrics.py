"""Metrics of a real fleet (gunicorn, prefork root and llm workers): an execution with sub-calls
moves each counter and histogram by what the trace table says, with the right labels, summed
over the pool processes; a guard trips; /metrics wants the token."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import multiprocess

from tests.metrics.conftest import METRICS_TOKEN, Fleet, http, parse, value
from tests.metrics.test_monitoring_files import dashboard_metric_names
from tests.support.scripted_model import FIND_SECRET_PROGRAM, ScriptedError, turn_index, user_text
from tests.support.services import wait_for

CHUNK = 100_000  # FIND_SECRET_PROGRAM's chunk size
CHUNKS = 8
CONTEXT = "".join(
    ("The secret code is AB-1234. " if i == 5 else "POISON " if i == 3 else "") + "x" * CHUNK
    for i in range(CHUNKS)
)[: CHUNK * CHUNKS]
SPIN_PROGRAM = "```repl\nwhile True:\n    pass\n```"
SUB, ROOT_MODEL = "openai/scripted-sub", "openai/scripted-root"


def responder(request: dict[str, Any]) -> str:
    """Root turns: the find-the-secret fan-out (the spin test: a busy cell, then an answer).
    Sub-calls: the secret, NONE, or a 401 for the chunk with POISON."""
    text = json.dumps(request.get("messages", []))
    if "Recursive Language Model" in text:
        if "SPIN-TEST" in text:
            return SPIN_PROGRAM if turn_index(request) == 0 else "FINAL(spun)"
        return FIND_SECRET_PROGRAM
    prompt = user_text(request)
    if "POISON" in prompt:
        raise ScriptedError(401, "scripted: invalid api key")
    return "AB-1234" if "AB-1234" in prompt else "NONE"


def run(fleet: Fleet, body: dict[str, Any], watch=None) -> tuple[dict[str, Any], int]:
    """Submit through gunicorn and poll until it ends; returns the record and the GETs made."""
    status, raw = http(f"{fleet.api}/api/execute", data=body)
    assert status == 202, raw
    execution_id = json.loads(raw)["id"]
    gets = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if watch:
            watch()
        status, raw = http(f"{fleet.api}/api/executions/{execution_id}")
        gets += 1
        assert status == 200, raw
        record = json.loads(raw)
        if record["status"] in ("succeeded", "failed", "timed_out", "cancelled"):
            return record, gets
        time.sleep(0.1)
    raise TimeoutError(f"execution {execution_id} did not finish")


def node_totals(fleet: Fleet, execution_id: str, kind: str) -> tuple[int, int, float, int]:
    """(input tokens, output tokens, cost, nodes) of the execution's nodes of `kind`, from the trace."""
    engine = sa.create_engine(fleet.env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT coalesce(sum(input_tokens),0), coalesce(sum(output_tokens),0),"
                " coalesce(sum(cost_usd),0), count(*) FROM trace_nodes"
                " WHERE execution_id = :id AND kind = :kind AND status IN ('succeeded', 'failed')"
            ),
            {"id": execution_id, "kind": kind},
        ).one()
    engine.dispose()
    return int(row[0]), int(row[1]), float(row[2]), int(row[3])


def delta(before: dict, after: dict, where: str, name: str, **labels: str) -> float:
    return value(after[where], name, **labels) - value(before[where], name, **labels)


@pytest.fixture(scope="module")
def finding(fleet, model_server):
    """One find-the-secret execution: 8 sub-calls (one answers 401), scraped before and after."""
    model_server.reset(responder=responder, latency=0.3)
    before = fleet.scrape_all()
    live_seen: list[float] = []

    def watch() -> None:
        live_seen.append(value(fleet.scrape(fleet.root_metrics), "rlm_live_sandboxes"))

    record, gets = run(fleet, {"user_query": "What is the secret code?", "context": CONTEXT}, watch)
    # The REPL is reaped as the run ends, a moment after the record says so.
    wait_for(
        lambda: value(fleet.scrape(fleet.root_metrics), "rlm_live_sandboxes") == 0, 30, what="no live REPL"
    )
    model_server.reset(latency=0.0)
    return {"record": record, "gets": gets, "before": before, "after": fleet.scrape_all(), "live": live_seen}


def test_execution_and_sub_calls_are_counted_with_their_labels(fleet, finding):
    record, before, after = finding["record"], finding["before"], finding["after"]
    assert record["status"] == "succeeded", record
    execution_id = record["id"]
    assert delta(before, after, "root", "rlm_executions_total", status="succeeded", strategy="none") == 1

    calls = delta(before, after, "llm", "rlm_subcall_duration_seconds_count", model=SUB, queue="rlm.llm")
    assert calls == CHUNKS
    assert (
        delta(before, after, "llm", "rlm_subcall_duration_seconds_sum", model=SUB, queue="rlm.llm")
        >= 0.3 * CHUNKS
    )
    slow = delta(
        before, after, "llm", "rlm_subcall_duration_seconds_bucket", model=SUB, queue="rlm.llm", le="0.25"
    )
    assert slow == 0  # every call took the scripted 0.3 s

    inp, out, cost, nodes = node_totals(fleet, execution_id, "llm_call")
    assert nodes == CHUNKS
    assert delta(before, after, "llm", "rlm_model_tokens_total", model=SUB, direction="input") == inp > 0
    assert delta(before, after, "llm", "rlm_model_tokens_total", model=SUB, direction="output") == out > 0
    assert delta(before, after, "llm", "rlm_model_cost_usd_total", model=SUB) == pytest.approx(cost, rel=1e-6)
    assert delta(before, after, "llm", "rlm_model_errors_total", model=SUB, kind="AuthenticationError") == 1

    inp, out, cost, _ = node_totals(fleet, execution_id, "iteration")
    assert (
        delta(before, after, "root", "rlm_model_tokens_total", model=ROOT_MODEL, direction="input") == inp > 0
    )
    assert (
        delta(before, after, "root", "rlm_model_tokens_total", model=ROOT_MODEL, direction="output")
        == out
        > 0
    )
    assert delta(before, after, "root", "rlm_model_cost_usd_total", model=ROOT_MODEL) == pytest.approx(
        cost, rel=1e-6
    )
    # Nothing of the root's model reached the llm worker's numbers, and the reverse.
    assert delta(before, after, "llm", "rlm_model_tokens_total", model=ROOT_MODEL, direction="input") == 0
    assert delta(before, after, "root", "rlm_subcall_duration_seconds_count", model=SUB, queue="rlm.llm") == 0


def test_live_sandboxes_rise_while_the_repl_lives_and_fall_after(finding):
    assert max(finding["live"]) == 1, finding["live"]
    assert value(finding["after"]["root"], "rlm_live_sandboxes") == 0


def test_the_worker_port_sums_its_pool_processes(fleet, finding):
    """Each pool child wrote its own file; the scrape is their sum, and both children took calls."""
    per_pid: dict[str, float] = {}
    for path in fleet.llm_multiproc_dir.glob("histogram_*.db"):  # one file per process
        for family in multiprocess.MultiProcessCollector.merge([str(path)]):
            for sample in family.samples:
                if sample.name == "rlm_subcall_duration_seconds_count" and sample.labels.get("model") == SUB:
                    per_pid[path.stem] = per_pid.get(path.stem, 0) + sample.value
    assert len([n for n in per_pid.values() if n > 0]) >= 2, per_pid
    scraped = value(finding["after"]["llm"], "rlm_subcall_duration_seconds_count", model=SUB, queue="rlm.llm")
    assert sum(per_pid.values()) == scraped


def test_api_latency_is_labelled_by_route_rule(finding):
    before, after = finding["before"], finding["after"]
    route = "/api/executions/<execution_id>"
    gets = delta(
        before,
        after,
        "api",
        "rlm_api_request_duration_seconds_count",
        route=route,
        method="GET",
        status="200",
    )
    assert gets == finding["gets"]
    posts = delta(
        before,
        after,
        "api",
        "rlm_api_request_duration_seconds_count",
        route="/api/execute",
        method="POST",
        status="202",
    )
    assert posts == 1
    assert not any(
        name.startswith("rlm_api") and finding["record"]["id"] in str(labels) for name, labels in after["api"]
    )


def test_queue_depths_of_the_fleet_are_zero_when_drained(finding):
    after = finding["after"]["api"]
    assert value(after, "rlm_queue_depth", queue="rlm.root") == 0
    assert value(after, "rlm_queue_depth", queue="rlm.llm") == 0
    assert ("rlm_queue_depth", (("queue", "rlm.llm"),)) in after


@pytest.fixture(scope="module")
def guarded(fleet, model_server, finding):
    """A budget guard (max_sub_calls) and a sandbox guard (a cell over its CPU seconds)."""
    model_server.reset(responder=responder, latency=0.0)
    before = fleet.scrape_all()
    record, _ = run(fleet, {"user_query": "again", "context": CONTEXT, "options": {"max_sub_calls": 2}})
    spun, _ = run(fleet, {"user_query": "SPIN-TEST", "context": "c", "options": {"cell_cpu_seconds": 1}})
    return {"record": record, "spun": spun, "before": before, "after": fleet.scrape_all()}


def test_guards_are_counted_by_name(guarded):
    record, spun, before, after = guarded["record"], guarded["spun"], guarded["before"], guarded["after"]
    assert record["status"] == "failed" and record["guard_hit"] == "max_sub_calls", record
    assert spun["status"] == "succeeded", spun
    assert delta(before, after, "root", "rlm_guard_trips_total", guard="max_sub_calls") == 1
    assert delta(before, after, "root", "rlm_guard_trips_total", guard="cell_cpu") == 1
    assert delta(before, after, "root", "rlm_executions_total", status="failed", strategy="none") == 1
    assert delta(before, after, "root", "rlm_executions_total", status="succeeded", strategy="none") == 1


def test_every_metric_of_the_dashboard_is_in_a_real_scrape(fleet, finding, guarded):
    scraped = {name for samples in fleet.scrape_all().values() for name, _ in samples}
    used = dashboard_metric_names()
    assert used and used <= scraped, used - scraped


def test_metrics_want_the_token(fleet):
    for url in (f"{fleet.api}/metrics", fleet.root_metrics, fleet.llm_metrics):
        status, body = http(url)
        assert status == 401, (url, body[:200])
        assert json.loads(body)["error"]["code"] == "unauthorized"
        assert http(url, "wrong-token")[0] == 401
        status, body = http(url, METRICS_TOKEN)
        assert status == 200 and parse(body.decode())
