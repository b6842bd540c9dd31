"""BENCHMARKS.md is shared: the suite rewrites only its own part, between its markers."""

from __future__ import annotations

from bench.report import BEGIN, END, Section, Target, write
from bench.workload import Spread, make_context, percentile


def _section(value: str) -> Section:
    return Section(
        "1. Fan-out",
        "python -m bench.run_all",
        f"| a |\n|---|\n| {value} |",
        ["note"],
        [Target("fan-out", value, "≤ 1.5×", True)],
    )


def test_rewrites_only_between_the_markers(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## Local model: needle in a haystack\n\nsix of six\n")
    write(path, "machine", [_section("first")])
    write(path, "machine", [_section("second")])
    text = path.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert "second" in text and "first" not in text
    assert "## Local model: needle in a haystack\n\nsix of six" in text
    assert "| fan-out | second | ≤ 1.5× | yes |" in text


def test_statistics_and_inputs():
    spread = Spread.of([3.0, 1.0, 2.0, 10.0, 4.0])
    assert (spread.median, spread.low, spread.high, spread.runs) == (3.0, 1.0, 10.0, 5)
    values = [float(i) for i in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50.0, 99.0, 100.0)
    text = make_context(10_000, salt="a")
    assert len(text) == 10_000 and text != make_context(10_000, salt="b")
