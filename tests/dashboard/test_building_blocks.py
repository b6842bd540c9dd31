"""The dashboard's pure parts: memory diffs, tree totals, the waterfall, charts, highlighting."""

from __future__ import annotations

from types import SimpleNamespace

from markupsafe import Markup

from dashboard.charts import bar_chart, column_chart
from dashboard.diff import diff_blocks
from dashboard.highlight import highlight_python
from dashboard.tree import build_tree, build_waterfall, cost_breakdown
from tests.dashboard.builders import at


def test_diff_marks_added_and_removed_lines_per_block():
    before = {"learnings": "a\nb\nc", "plan": "scan", "same": "x"}
    after = {"learnings": "a\nB\nc\nd", "notes": "new", "same": "x"}
    diffs = {d.label: d for d in diff_blocks(before, after)}
    assert set(diffs) == {"learnings", "plan", "notes"}
    kinds = [(line.kind, line.text) for line in diffs["learnings"].lines if line.kind != "hunk"]
    assert ("del", "b") in kinds and ("add", "B") in kinds and ("add", "d") in kinds
    assert diffs["plan"].change == "removed" and diffs["notes"].change == "added"


def test_diff_of_an_append_matches_difflib_lines():
    diff = diff_blocks({"learnings": "one\ntwo\nthree"}, {"learnings": "one\ntwo\nthree\nfour"})[0]
    assert [(d.kind, d.text) for d in diff.lines] == [
        ("hunk", "@@ -2,2 +2,3 @@"),
        ("ctx", "two"),
        ("ctx", "three"),
        ("add", "four"),
    ]
    assert diff.added == 1 and diff.removed == 0


def _row(
    path, kind, parent=None, cost=0.0, tokens=0, model=None, depth=0, start=0, end=1, status="succeeded"
):
    return SimpleNamespace(
        id=path, parent_id=parent, path=path, kind=kind, model=model, status=status, depth=depth,
        preview="```repl\nprint(1)", error=None, input_tokens=tokens, output_tokens=0, cost_usd=cost,
        started_at=at(start), finished_at=at(end) if end is not None else None,
    )  # fmt: skip


def test_tree_nests_rows_and_adds_up_model_calls_below_each_node():
    rows = [
        _row("0", "root", cost=9.0, tokens=999),  # the root repeats its descendants' totals
        _row("0.0", "iteration", "0", cost=1.0, tokens=10, model="big"),
        _row("0.0.0", "code", "0.0"),
        _row("0.0.0.0", "llm_call", "0.0.0", cost=0.5, tokens=5, model="small", depth=1, start=1, end=3),
        _row("0.0.0.1", "llm_call", "0.0.0", cost=0.25, tokens=5, model="small", depth=1, start=2, end=4),
        _row("0.0.0.2", "llm_call", "0.0.0", model="small", depth=1, start=5, end=None, status="failed"),
    ]
    tree = build_tree(rows)
    root = tree.roots[0]
    assert tree.count == 6 and root.total_cost == 1.75 and root.total_tokens == 20
    code = root.children[0].children[0]
    assert [c.path for c in code.children] == ["0.0.0.0", "0.0.0.1", "0.0.0.2"]
    assert code.failed_below == 1 and root.failed_below == 1
    assert root.is_open and root.children[0].is_open and not code.is_open
    assert code.preview == "print(1)"
    by_model, by_depth = cost_breakdown(tree)
    assert [(line.key, line.calls, line.share) for line in by_model] == [
        ("big", 1, 57.14),
        ("small", 3, 42.86),
    ]
    assert [line.key for line in by_depth] == ["depth 0", "depth 1"]
    waterfall = build_waterfall(tree, at(0), at(10))
    assert waterfall.peak_parallel == 2 and waterfall.span_seconds == 10
    bars = {r.node.path: r for r in waterfall.rows}
    assert bars["0.0.0.0"].left == 10.0 and bars["0.0.0.0"].width == 20.0
    assert bars["0.0.0.2"].left == 50.0 and bars["0.0.0.2"].width == 50.0  # still running: to the end


def test_charts_scale_to_the_largest_value():
    chart = bar_chart("t", [("a", 10.0), ("b", 5.0), ("c", 0.0)], str)
    widths = [b.width for b in chart.bars]
    assert widths[0] == 2 * widths[1] and widths[2] == 0
    columns = column_chart("t", [("d1", 1.0), ("d2", 4.0)], str, height=136)
    assert columns.bars[1].height == 100 and columns.bars[0].height == 25


def test_highlighting_escapes_the_source():
    out = highlight_python('print("<script>alert(1)</script>")')
    assert isinstance(out, Markup) and "<script>" not in out and "&lt;script&gt;" in out
