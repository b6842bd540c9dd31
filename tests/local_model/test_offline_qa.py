"""A small version of `python -m bench.offline_qa`: the real local model, the shipped `search`
strategy, the question set's own scoring. One definition the answer check used to throw away
(issue 15), a date a log entry's heading carries, two questions worded unlike the text, and three
the text does not answer, where any answer would be invented."""

from __future__ import annotations

import pytest

from bench.offline_qa import ask, load_questions, verdict

QUESTIONS = {q.id: q for q in load_questions()}


@pytest.mark.parametrize(
    "question_id",
    [
        "dd-absurdity",
        "tern-equator",
        "dd-caution",
        "tern-death",  # "died" reached through "killed", the embedding model's stand-in
        "dd-absent-bride",
        "tern-absent-passengers",
        "tern-absent-tonnage",  # "registered tonnage" must not become "account ... 9 tons"
    ],
)
def test_the_local_model_answers_right_and_invents_nothing(local_engine, question_id):
    engine, _ = local_engine
    outcome = ask(engine, QUESTIONS[question_id], "full", 0)
    assert outcome.verdict == "right", outcome


def test_the_question_set_covers_every_kind_and_enough_absent_questions():
    questions = list(QUESTIONS.values())
    assert len(questions) >= 30
    assert sum(not q.answerable for q in questions) >= 8
    assert {q.kind for q in questions} >= {
        "date",
        "name",
        "number",
        "definition",
        "list",
        "reworded",
        "absent",
    }
    assert {q.document for q in questions} == {"northern_tern_log.txt", "devils_dictionary_a_b.txt"}


def test_the_scoring_tells_right_missed_wrong_invented_and_failed_apart():
    death, absent = QUESTIONS["tern-death"], QUESTIONS["dd-absent-bride"]
    text = "Sunday 3 April 1887: Seaman John Pellow fell from the foretopsail yard and was killed."
    assert verdict(death, "succeeded", True, text) == "right"
    assert verdict(death, "succeeded", True, "Seaman John Pellow fell.") == "wrong"  # no date
    assert verdict(death, "succeeded", False, "NONE") == "missed"
    assert verdict(absent, "succeeded", False, "NONE") == "right"
    assert verdict(absent, "succeeded", True, "BRIDE, n. A woman.") == "invented"
    assert verdict(absent, "failed", None, None) == "failed"
