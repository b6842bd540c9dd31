"""bench/inputs.py at a tiny size: every file of its mixed folder converts, and its table renders."""

from __future__ import annotations

from bench import inputs


def test_the_conversion_benchmark_reads_every_file_it_makes():
    results = inputs.measure(runs=1, pages=3, files=20)
    pdf, folder = results["3-page PDF"], results["20-file folder"]
    assert pdf["documents"] == 1 and pdf["chars"] > 3 * 1000 and pdf["skipped"] == 0
    assert folder["documents"] == 20 and folder["skipped"] == 0
    assert 0 < folder["seconds_median"] and folder["peak_rss_mb"] >= folder["growth_mb"] >= 0
    table = inputs.markdown(results)
    assert "| 3-page PDF | " in table and "| 20-file folder | " in table
