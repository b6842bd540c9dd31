"""Each benchmark at a tiny size against the real stack: it runs, its numbers are sane, its table renders.

Speed targets are not asserted here (the benchmark suite reports those); correctness of what each
benchmark measured is.
"""

from __future__ import annotations

import math

import pytest

from bench import chain, context_scale, fanout, overhead, programs, sandbox_costs, throughput


def _cells(section, row: int = 0) -> list[str]:
    line = section.table.splitlines()[2 + row]
    return [c.strip() for c in line.strip("|").split("|")]


def test_fanout_answers_every_chunk_against_both_engines(bench_stack):
    section = fanout.benchmark(bench_stack, worker_counts=(1,), runs=1, chars=20_000, chunks=8)
    ours, litellm_path, alone, sdk, reference = (_cells(section, i) for i in range(5))
    assert ours[0] == "1 × 8 threads"
    assert litellm_path[0] == "1 × 8 threads, `LEAN_MODEL_CLIENT=false`"
    assert alone[0] == "litellm alone, no engine (1 process)"
    assert sdk[0] == "`openai` SDK alone, no engine (1 process)"
    assert reference[0].startswith("reference")
    assert all(
        int(row[-2]) >= 1 for row in (ours, litellm_path, alone, sdk, reference)
    )  # the server saw them
    # CPU per sub-call: the litellm path includes litellm's, so it is no less than litellm alone's
    assert float(litellm_path[-1].split()[0]) >= float(alone[-1].split()[0]) > 0
    assert {t.what for t in section.targets} == {
        "fan-out vs reference (4 × 32)",
        "fan-out vs ideal (4 × 32)",
        "CPU per sub-call, engine + Postgres + Redis (1 × 8)",
    }
    assert any("CPU per sub-call by process" in note for note in section.notes)
    assert bench_stack.env["LEAN_MODEL_CLIENT"] == "true"  # later benchmarks run the default path


def test_fanout_run_counts_the_cpu_of_every_kind_of_process(bench_stack):
    run = fanout.run_ours(bench_stack, "x" * 5_000, 4)
    assert set(fanout.ENGINE) <= set(run.by_process)
    assert run.by_process["llm workers"] > 0 and run.by_process["root worker"] > 0
    assert run.cpu_ms_per_call == pytest.approx(sum(run.by_process[kind] for kind in fanout.ENGINE))


def test_fanout_run_reports_wall_time_no_shorter_than_the_model_latency(bench_stack):
    run = fanout.run_ours(bench_stack, "x" * 5_000, 4)
    assert run.wall >= bench_stack.latency * 2  # the root call, then the sub-calls
    assert run.peak >= 1
    assert math.isnan(run.fanout) or run.fanout >= bench_stack.latency


def test_overhead_measures_every_call_in_both_modes_and_both_client_paths(bench_stack):
    section = overhead.benchmark(bench_stack, calls=15)
    rows = [_cells(section, i) for i in range(7)]
    assert [r[0] for r in rows][:1] + [r[0] for r in rows][2:] == [
        "bare `openai` SDK call (what the lean client sends)",
        "bare `litellm.completion`",
        "bare Celery task (no model, no database)",
        "distributed (Celery, Postgres), lean client (default), vs the bare SDK call",
        "distributed, `LEAN_MODEL_CLIENT=false`, vs bare `litellm.completion`",
        "embedded (threads, SQLite), lean client, vs the bare SDK call",
    ]
    assert rows[1][0].startswith("bare `openai` SDK call, ") and rows[1][0].endswith("idle between calls")
    for row in rows:
        p50, p95, p99 = (float(c.split()[0]) for c in row[1:4])
        assert 0 < p50 <= p95 <= p99 < 5_000
    for distributed in rows[4:6]:
        # Not a speed target: Celery's gather once slept 0.5 s per wait (fixed in CeleryDispatcher).
        assert float(distributed[1].split()[0]) < 250
        # A sub-call is a Celery round trip and more, so it cannot be the cheaper of the two.
        assert float(distributed[1].split()[0]) > float(rows[3][1].split()[0])
    # The stage breakdown: every stage stamped, the model call among them.
    stages = next(note for note in section.notes if note.startswith("| stage of one sub-call"))
    assert "model call (litellm, through our client)" in stages and "trace row written" in stages
    assert {t.what for t in section.targets} == {
        "overhead beyond the bare call, p50",
        "overhead beyond the bare call, p99",
    }
    assert bench_stack.latency == 0.02  # restored after the zero-latency runs
    assert bench_stack.env["LEAN_MODEL_CLIENT"] == "true"  # later benchmarks run the default path


def test_chain_runs_its_calls_in_order(bench_stack):
    section = chain.benchmark(bench_stack, steps=4, runs=1)
    row = _cells(section, 0)
    assert row[0] == "4 × 20 ms"
    assert float(row[3].rstrip("×")) >= 1.0  # nothing beats the model's latency


def test_context_scale_times_the_first_model_call(bench_stack):
    section = context_scale.benchmark(bench_stack, sizes=(20_000,), runs=1, fresh=False)
    row = _cells(section, 0)
    assert row[0] == "20,000"
    assert 0 < float(row[1].split()[0]) < 60


def test_throughput_counts_finished_executions(bench_stack):
    window = throughput.one_window(bench_stack, clients=3, subcalls=4, seconds=1.0)
    assert window["per_minute"] > 0
    assert 0 < window["submit_p50"] <= window["submit_p99"] < 30


def test_sandbox_costs_are_measured_through_the_production_factory():
    costs = sandbox_costs.measure(runs=1)
    assert 0 < costs["cell"].median < costs["start"].median + 1
    assert 0 < costs["call"].median < 1


def test_the_model_server_answers_the_programs_and_the_chain():
    assert "llm_query_batched" in programs.root_reply(programs.query("fanout", 3))
    assert programs.root_reply("no marker here") == programs.GIVE_UP
    assert programs.sub_reply("bench-chain-step 41") == "42"
    assert programs.sub_reply("anything else") == "1"
