"""The dashboard benchmark runs end to end on a small tree and prints its table."""

from __future__ import annotations

from bench.bench_dashboard import markdown_table, run


def test_bench_renders_a_synthetic_trace_and_reports_times(app, dashboard_db_url):
    results = run(dashboard_db_url, sizes=(60,), runs=5)
    [(count, times, size)] = results
    assert 55 <= count <= 70 and len(times) == 5 and all(t > 0 for t in times) and size > 10_000
    table = markdown_table(results)
    assert table.splitlines()[0] == "| nodes | runs | median ms | min ms | max ms | page size |"
    assert f"| {count:,} | 5 |" in table
