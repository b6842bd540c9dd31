"""The strategies' in-sandbox helpers as plain functions: chunking, term search, the answer check.

The replies below are real SmolLM2-135M replies seen while building the needle benchmark.
"""

from __future__ import annotations

import pytest
from RestrictedPython import compile_restricted_exec

from bench.needle import NEEDLES, build_cases, plant, score
from rlm_worker.engine.options import ExecutionOptions
from rlm_worker.strategies import STRATEGIES, UnknownStrategy, get_strategy, root_program
from rlm_worker.strategies import common as c

ELEMENTS = """helium
Symbol: He
Atomic number: 2
Atomic weight: 4.0026
Colourless, odourless gaseous nonmetallic element. Belongs to group 18 of the periodic table.
Discovered in the solar spectrum in 1868 by Lockyer.

phosphorus
Symbol: P
Atomic number: 15
Non-metallic element belonging to group 15 of the periodic table. Has a multiple allotropic forms.
"""
VAULT = "What is the vault combination?"
WITH_VAULT = ELEMENTS + "\nThe vault combination is 4417-2291.\n\nneon\nSymbol: Ne\nAtomic number: 10\n"


def test_every_strategy_compiles_under_the_sandbox_rules():
    for name in STRATEGIES:
        assert compile_restricted_exec(get_strategy(name)).errors == ()


def test_the_options_accept_exactly_the_built_in_strategies():
    for name in STRATEGIES:
        assert ExecutionOptions(strategy=name).strategy == name
    with pytest.raises(ValueError):
        ExecutionOptions(strategy="guess")
    with pytest.raises(UnknownStrategy, match="built in: search, find, map_reduce"):
        get_strategy("guess")


def test_the_users_own_root_code_wins_over_a_strategy():
    assert root_program("find", "FINAL(1)") == ("FINAL(1)", "root_code")
    code, label = root_program("find", None)
    assert label == "strategy find" and "llm_query_batched" in code
    assert root_program(None, None) is None


def test_a_copied_sentence_is_backed_and_lead_ins_are_dropped():
    assert c.supported("The vault combination is 4417-2291.", WITH_VAULT, VAULT) == (
        "The vault combination is 4417-2291."
    )
    assert c.supported("The answer is: 4417-2291", WITH_VAULT, VAULT) == "4417-2291"
    # a reply that repeats itself is cut to its first sentence, which is backed
    repeated = "The vault combination is 4417-2291.  The vault combination is 4417-229"
    assert c.supported(repeated, WITH_VAULT, VAULT) == "The vault combination is 4417-2291."


@pytest.mark.parametrize(
    "reply",
    [
        "The vault combination is 123456.",  # invented number
        "The vault combination is a rare and valuable element that is used in c",  # invented words
        "The answer is: 15",  # a number the text has, in a sentence about something else
        "15 of the periodic table.",  # copied verbatim, but not about the vault
        "NONE",
        "The text does not state a vault combination.",
        "Error: sub-call timed out",
    ],
)
def test_replies_the_text_does_not_back_are_dropped(reply):
    assert c.supported(reply, WITH_VAULT, VAULT) is None


def test_an_answer_that_only_restates_the_question_is_dropped():
    question = "In which drawer is the laboratory key kept?"
    text = "The laboratory key is kept in drawer 12 of the oak desk. The drawer sticks."
    assert c.supported("The laboratory key is kept in the drawer.", text, question) is None
    assert c.supported("The laboratory key is kept in drawer 12 of the oak desk.", text, question)


def test_chunks_cover_the_text_in_order_and_cut_at_paragraphs():
    text = "\n\n".join(f"Paragraph {i}. " + "word " * 40 for i in range(50))
    chunks = c.split_chunks(text, 1000)
    assert "".join(chunks) == text
    assert all(len(ch) <= 1000 for ch in chunks)
    assert all(ch.endswith("\n\n") for ch in chunks[:-1])


def test_the_question_terms_drop_stopwords_and_possessives():
    assert c.question_terms("What was the name of Captain Ortolan's ship?") == ["captain", "ortolan", "ship"]
    assert c.stem("inspected") == "inspect" and c.stem("1893") == "1893"


def test_windows_lead_with_the_rarest_terms():
    filler = "The captain walked the ship's deck. " * 60
    text = filler + "Captain Ortolan's ship was named the Grey Petrel. " + filler
    windows = c.score_windows(text, ["captain", "ortolan", "ship"], 800, 3)
    assert "Grey Petrel" in windows[0][1]
    assert windows[0][0] > windows[1][0]
    assert c.score_windows(text, ["zeppelin"], 800, 3) == []


def test_the_benchmark_plants_each_needle_once_and_keeps_a_twin_without_it():
    cases = build_cases(10_000, seed=3)
    assert len(cases) == 2 * 2 * len(NEEDLES)
    for case in cases:
        assert case.context.count(case.needle.sentence) == (1 if case.present else 0)
        assert 9_000 < len(case.context) < 10_200
    present, absent = cases[0], cases[1]
    assert score(present, "NONE") == "missed"
    assert score(present, f"It is {present.needle.answer}.") == "correct"
    assert score(absent, "The vault combination is 1.") == "false"
    assert score(absent, "NONE") == "correct"
    import random

    planted = plant("a\n\nb\n\nc\n\nd\n\ne\n\n" * 20, "NEEDLE.", random.Random(1))
    assert "\n\nNEEDLE.\n\n" in planted
