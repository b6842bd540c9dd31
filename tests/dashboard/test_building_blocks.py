"""The dashboard's pure parts: memory diffs, tree totals, the waterfall, charts, highlighting."""

from __future__ import annotations

from types import SimpleNamespace

from markupsafe import Markup

from dashboard.charts import bar_chart, column_chart, time_chart
from dashboard.diff import diff_blocks
from dashboard.formatting import money
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
    path,
    kind,
    parent=None,
    cost=0.0,
    tokens=0,
    model=None,
    depth=0,
    start=0,
    end=1,
    status="succeeded",
    prompt=None,
    queued=None,
):
    return SimpleNamespace(
        queued_at=at(queued) if queued is not None else None,
        id=path, parent_id=parent, path=path, kind=kind, model=model, status=status, depth=depth,
        preview="```repl\nprint(1)", error=None, input_tokens=tokens, output_tokens=0, cost_usd=cost,
        started_at=at(start) if start is not None else None, finished_at=at(end) if end is not None else None,
        prompt_head=prompt[:1500] if prompt else None, prompt_tail=prompt[-200:] if prompt else None,
        prompt_length=len(prompt) if prompt else None,
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


def test_a_fixed_root_program_is_no_model_and_free_calls_have_no_share():
    rows = [
        _row("0", "root"),
        _row("0.0", "iteration", "0", model="(strategy search)"),
        _row("0.0.0", "code", "0.0"),
        _row("0.0.0.0", "llm_call", "0.0.0", tokens=5, model="local/smollm2", depth=1),
        _row("0.0.0.1", "llm_call", "0.0.0", tokens=7, model="local/smollm2", depth=1),
    ]
    by_model, by_depth = cost_breakdown(build_tree(rows))
    assert [(line.key, line.calls, line.share) for line in by_model] == [("local/smollm2", 2, None)]
    assert [(line.key, line.share) for line in by_depth] == [("depth 1", None)]


DOCUMENT = " ".join(f"Entry {i}: the ship logged fact number {i} at noon." for i in range(400))
TEMPLATE = 'Question: Who died?\nIf the text below states it, copy that sentence.\n\nText:\n"""\n{}\n"""'


def test_sub_calls_of_one_batch_are_told_apart_by_the_passage_they_read():
    starts = (0, 3000, 9000, 15000)
    rows = [_row("0", "root"), _row("0.0", "code", "0")]
    for i, start in enumerate(starts):
        rows.append(
            _row(f"0.0.{i}", "llm_call", "0.0", prompt=TEMPLATE.format(DOCUMENT[start : start + 800]))
        )
    rows.append(_row("0.1", "llm_call", "0", prompt="Summarise the log in one line."))

    def place(head, length):
        from rlm_api.passages import documents, locate

        return locate(documents("str", DOCUMENT), head, length)

    tree = build_tree(rows, place=place)
    calls = [n for n in tree.nodes if n.kind == "llm_call"]
    labels = [n.label for n in calls[:4]]
    assert len(set(labels)) == 4 and not any("Question" in label for label in labels)
    for i, (label, start) in enumerate(zip(labels, starts, strict=True), start=1):
        assert label.startswith(f"#{i} · chars {start:,}–{start + 800:,} · “")
        assert DOCUMENT[start : start + 20].split()[0] in label
    # A call alone under its parent is compared with every call of the tree; here nothing is shared.
    assert calls[4].passage is None and calls[4].label == calls[4].preview


def test_a_call_of_another_template_under_the_same_parent_leaves_the_passages_told_apart():
    """The search strategy asks for related words, then a batch of passages, all under one code
    node: each call is compared with the call most like it, not with all of them."""
    starts = (0, 3000, 9000)
    rows = [_row("0", "root"), _row("0.0", "code", "0")]
    rows.append(_row("0.0.0", "llm_call", "0.0", prompt="Question: x\nWrite ten single words."))
    for i, start in enumerate(starts, start=1):
        rows.append(
            _row(f"0.0.{i}", "llm_call", "0.0", prompt=TEMPLATE.format(DOCUMENT[start : start + 800]))
        )

    def place(head, length):
        from rlm_api.passages import documents, locate

        return locate(documents("str", DOCUMENT), head, length)

    calls = [n for n in build_tree(rows, place=place).nodes if n.kind == "llm_call"]
    for i, (n, start) in enumerate(zip(calls[1:], starts, strict=True), start=2):
        assert n.label.startswith(f"#{i} · chars {start:,}–{start + 800:,} · “"), n.label


def test_passages_are_named_by_document_in_a_json_context():
    from rlm_api.passages import documents, locate

    docs = documents(
        "list", '[{"name": "a.txt", "text": "alpha beta gamma delta"}, {"title": "b", "text": "x"}]'
    )
    assert docs == [("a.txt", "alpha beta gamma delta"), ("b", "x")]
    place = locate(docs, "beta gamma delta", 10)
    assert (place.document, place.start, place.end) == ("a.txt", 6, 16)
    assert documents("dict", '{"notes.txt": "some notes"}') == [("notes.txt", "some notes")]


def test_days_read_as_rows_when_few_and_as_a_sentence_when_all_free():
    one_day = time_chart("Cost by day", [("12-02", 0.5)], money)
    assert one_day.horizontal and one_day.bars[0].width > 100 and one_day.bars[0].text == "$0.5000"
    free = time_chart("Cost by day", [("12-01", 0.0), ("12-02", 0.0)], money)
    assert free.bars == [] and "All $0 over 2 days" in free.note
    many = time_chart("Tokens by day", [(f"12-0{d}", float(d)) for d in range(1, 8)], str)
    assert not many.horizontal and len(many.bars) == 7 and all(b.tick for b in many.bars)
    month = time_chart("Tokens by day", [(f"d{d}", float(d)) for d in range(30)], str)
    ticks = [b.label for b in month.bars if b.tick]
    assert ticks[-1] == "d29" and 5 <= len(ticks) <= 10  # no two labels overlap


def test_charts_scale_to_the_largest_value():
    chart = bar_chart("t", [("a", 10.0), ("b", 5.0), ("c", 0.0)], str)
    widths = [b.width for b in chart.bars]
    assert widths[0] == 2 * widths[1] and widths[2] == 0
    columns = column_chart("t", [("d1", 1.0), ("d2", 4.0)], str, height=136)
    assert columns.bars[1].height == 100 and columns.bars[0].height == 25


def test_highlighting_escapes_the_source():
    out = highlight_python('print("<script>alert(1)</script>")')
    assert isinstance(out, Markup) and "<script>" not in out and "&lt;script&gt;" in out


def test_the_timeline_tells_waiting_running_finished_and_cancelled_apart():
    """#32: calls that only waited in the queue were drawn as full red bars and counted as in flight."""
    rows = [
        _row("0", "root"),
        _row("0.0", "code", "0", start=0, end=None, status="running"),
        # sent at 0; one ran 0-4, one waited until 4 and ran 4-6, one is still waiting,
        # one waited and was cancelled at 8 without ever running, one is running now.
        _row("0.0.0", "llm_call", "0.0", queued=0, start=0, end=4),
        _row("0.0.1", "llm_call", "0.0", queued=0, start=4, end=6),
        _row("0.0.2", "llm_call", "0.0", queued=0, start=None, end=None, status="queued"),
        _row("0.0.3", "llm_call", "0.0", queued=0, start=None, end=8, status="cancelled"),
        _row("0.0.4", "llm_call", "0.0", queued=0, start=6, end=None, status="running"),
    ]
    waterfall = build_waterfall(build_tree(rows), at(0), None)
    bars = {r.node.path: r for r in waterfall.rows}
    assert {p: bars[p].state for p in bars if p.startswith("0.0.")} == {
        "0.0.0": "done", "0.0.1": "done", "0.0.2": "queued", "0.0.3": "cancelled", "0.0.4": "running",
    }  # fmt: skip
    assert waterfall.peak_parallel == 1  # never two running at once: the waits are not in flight
    assert bars["0.0.1"].wait_left == 0.0 and bars["0.0.1"].wait_width == 50.0 and bars["0.0.1"].left == 50.0
    assert bars["0.0.3"].wait_width == 100.0 and bars["0.0.3"].width == 0.0  # waited, never ran
    assert not bars["0.0.3"].node.failed  # a cancel is not a failure


def test_the_waterfall_html_draws_waits_apart_and_a_cancel_neutral(app, client):
    from rlm_api.database import db
    from rlm_shared.models import TraceNode
    from tests.dashboard.builders import make_execution

    built = make_execution(app, status="cancelled", guard_hit="cancelled", error="cancelled by the user")
    with app.app_context():
        db.session.add(
            TraceNode(
                id="q" * 32, execution_id=built.execution_id, kind="llm_call", path="0009", model="m",
                status="cancelled", queued_at=at(1), started_at=None, finished_at=at(3),
            )
        )  # fmt: skip
        db.session.commit()
    body = client.get(f"/executions/{built.execution_id}").get_data(as_text=True)
    assert 'class="cancelled-note"' in body and "Cancelled: cancelled by the user" in body
    assert 'class="guard"' not in body and 'class="error-box"' not in body
    assert (
        'class="wf-wait cancelled"' in body and "running at once (waiting in the queue not counted)" in body
    )
    assert "sub-calls were in flight" not in body


def test_counted_nouns_agree_with_their_count():
    from rlm_shared.wording import plural

    assert plural(1, "iteration") == "1 iteration" and plural(2, "iteration") == "2 iterations"
    assert plural(0, "sub-call") == "0 sub-calls" and plural(1_556, "model call") == "1,556 model calls"
    rows = [_row("0", "root"), _row("0.0", "code", "0"), _row("0.0.0", "llm_call", "0.0", start=0, end=1)]
    assert build_waterfall(build_tree(rows), at(0), at(1)).peak_parallel == 1
