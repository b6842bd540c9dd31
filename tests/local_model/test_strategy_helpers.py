"""The strategies' in-sandbox helpers as plain functions: chunking, term search, the answer check.

The replies below are real SmolLM2-135M replies seen while building the needle benchmark.
"""

from __future__ import annotations

import pytest
from RestrictedPython import compile_restricted_exec

from bench.needle import NEEDLES, build_cases, plant, score
from rlm_shared.strategies import STRATEGIES, UnknownStrategy, get_strategy, root_program
from rlm_shared.strategies import common as c
from rlm_worker.engine.options import ExecutionOptions

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


DICTIONARY = (
    "                                            G.J.\n\n"
    "ABSURDITY, n.  A statement or belief manifestly inconsistent with\none's own opinion.\n\n"
    "ACADEME, n.  An ancient school where morality and philosophy were\ntaught.\n"
)
ABSURDITY = "How does Bierce define ABSURDITY?"


@pytest.mark.parametrize(
    "reply",
    [
        # the sub-call that was thrown away (issue 15): the definition, word for word
        "ABSURDITY, n.  A statement or belief manifestly inconsistent with one's own opinion.",
        # the same with curly quotes, other spacing, another case and no end punctuation
        "A statement or belief manifestly inconsistent with one\u2019s own   opinion",
        "a statement or belief manifestly inconsistent with ONE'S OWN OPINION",
        # a lead-in, quotes and a dropped word (one word in ten may differ)
        'The answer is: "A statement or belief manifestly inconsistent with one\'s opinion."',
    ],
)
def test_a_sentence_copied_with_small_differences_is_backed(reply):
    answer = c.grounded(reply, DICTIONARY, ABSURDITY)
    assert answer is not None and "manifestly inconsistent" in answer


@pytest.mark.parametrize(
    "reply",
    [
        "A statement or belief plainly consistent with everyone's opinion.",  # not in the passage
        "An ancient school where morality and philosophy were taught.",  # copied, but about ACADEME
        "ABSURDITY, n.  A statement or belief manifestly inconsistent with his own 1881 opinion.",  # a number
    ],
)
def test_sentences_the_passage_does_not_contain_or_that_answer_another_question_are_rejected(reply):
    assert c.grounded(reply, DICTIONARY, ABSURDITY) is None


def test_a_copied_sentence_keeps_its_paragraphs_heading():
    log = (
        "Saturday 2 April 1887. Wind SSE. Tarred down the lower rigging.\n\n"
        "Sunday 3 April 1887. Wind E, fresh breeze. Seaman John Pellow fell from the foretopsail "
        "yard at 10 a.m. and was killed. Buried him at sea at 4 p.m.\n"
    )
    reply = "Seaman John Pellow fell from the foretopsail yard at 10 a.m. and was killed."
    question = "Which seaman was killed?"
    assert c.grounded(reply, log, question) == "Sunday 3 April 1887: " + reply
    # a changed name or time is not a copy
    assert c.grounded(reply.replace("Pellow", "Pollard"), log, question) is None
    assert c.grounded(reply.replace("10 a.m.", "11 a.m."), log, question) is None


def test_documents_keep_their_names_and_answers_cite_them_when_there_are_several():
    docs = [{"name": "a.txt", "format": "text", "text": "one. " * 300}, {"name": "b.txt", "text": "two."}]
    chunks, names = c.document_chunks(docs, 1000)
    assert names[0] == "a.txt" and names[-1] == "b.txt" and chunks[-1] == "two."
    assert len(chunks) == 3  # no chunk mixes two documents
    assert c.with_sources([("It is two.", "b.txt")], several=True) == ["It is two. [source: b.txt]"]
    assert c.with_sources([("It is two.", None)], several=False) == ["It is two."]
    assert c.document_chunks("plain text", 1000) == (["plain text"], [None])


def test_a_failed_sub_call_stops_the_program_with_its_reason():
    assert c.check_replies(["NONE", "It is 4."]) == ["NONE", "It is 4."]
    with pytest.raises(RuntimeError, match="a sub-call failed: unknown model nosuch/thing"):
        c.check_replies(["NONE", "Error: unknown model nosuch/thing"])


def test_suggested_words_drop_the_questions_own_and_stopwords():
    terms = c.question_terms("Who died on the voyage?")
    assert c.suggested_terms("Killed, buried, DIED, the, sea burial", terms) == [
        "killed",
        "buried",
        "sea",
        "burial",
    ]


def test_passages_follow_paragraphs_merging_short_ones_and_cutting_long_ones():
    entry = "Monday 9 May 1887. Came to anchor in Table Bay, Cape Town. " * 5  # ~300 characters
    short = "ACCORD, n.  Harmony."
    long = "word " * 300
    passages = c.paragraph_passages("\n\n".join([entry, entry, short, short, long]), 500)
    assert passages[:2] == [entry, entry]  # one log entry a passage
    assert passages[2] == short + "\n\n" + short  # short neighbours merged
    assert all(len(p) <= 500 for p in passages[3:]) and "".join(passages[3:]) == long


def test_the_names_a_question_asks_about():
    # search answers NONE at once when the text never mentions one (no passage could answer)
    assert c.named_terms("When did the ship arrive at Sydney?") == ["sydney"]
    assert c.named_terms("How does Bierce define ABSURDITY?") == ["bierce", "absurdity"]
    assert c.named_terms("Who died on the voyage, and when?") == []


ENTRIES = (
    "ADAGE, n.  Boned wisdom for weak\nteeth.\n\n"
    "Sunday 3 April 1887. Wind east, light. Seaman J. Pellow fell from the yard and was killed. Buried him at sea."
)


def test_answer_units_carry_their_paragraphs_heading_and_keep_initials_whole():
    units = c.answer_units([ENTRIES])
    assert units == [
        (0, "ADAGE, n.", "Boned wisdom for weak teeth."),
        (0, "Sunday 3 April 1887.", "Wind east, light."),
        (0, "Sunday 3 April 1887.", "Seaman J. Pellow fell from the yard and was killed."),
        (0, "Sunday 3 April 1887.", "Buried him at sea."),
    ]
    assert c.unit_answer(units[0]) == "ADAGE, n: Boned wisdom for weak teeth."


def test_a_word_written_in_capitals_must_be_a_capitalised_headword():
    assert c.as_written("adage", "What is an ADAGE?").search("ADAGE, n.")
    assert not c.as_written("adage", "What is an ADAGE?").search("an old adage says")
    assert c.as_written("adage", "What is an adage?").search("an old adage says")


def test_coverage_weighs_rare_and_absent_words_and_framing_words_do_not_count():
    units = c.answer_units([ENTRIES])
    question = "How does Bierce define ADAGE?"
    assert c.answer_terms(question) == ["bierce", "adage"]
    weights = c.term_weights(c.answer_terms(question), units, question, title="by Ambrose Bierce")
    assert weights["bierce"] < weights["adage"]  # a title word weighs a third
    assert c.coverage(units[0], weights, question) >= c.MIN_COVERAGE
    assert c.coverage(units[2], weights, question) == 0.0


def test_a_when_question_needs_a_date_and_a_how_many_question_a_number():
    units = c.answer_units([ENTRIES])
    assert c.fits_question(units[2], "When was Pellow killed?")  # the heading holds the date
    assert not c.fits_question(units[0], "When was the adage said?")
    assert not c.fits_question(units[3], "How many men were buried?")


def test_a_reply_votes_for_the_sentence_holding_its_words():
    units = c.answer_units([ENTRIES])
    question = "Who was killed?"
    assert c.reply_agreement("Seaman J. Pellow was killed.", units[2], question) == 1.0
    assert c.reply_agreement("Seaman J. Pellow was killed.", units[3], question) == 0.0
    assert c.reply_agreement("NONE", units[2], question) == 0.0


def test_the_text_vocabulary_leaves_out_stopwords_framing_and_the_questions_own_words():
    chunks = ["Seaman Pellow was killed. The seaman was buried at sea.", "Define the words: killed again."]
    assert c.text_vocabulary(chunks, ["seaman"]) == ["killed", "pellow", "buried", "sea", "again"]
    assert c.text_vocabulary(chunks, [], limit=2) == ["seaman", "killed"]


def test_a_sentence_earns_one_stand_in_weighed_by_its_similarity():
    weights = {"registered": 6.0, "tonnage": 6.0, "schooner": 2.0}
    stand_ins = {"registered": [("account", 0.53)], "tonnage": [("tons", 0.52)]}
    both = (0, "Saturday 19 March 1887.", "Took on wine on the owners' account and 9 tons of water.")
    assert c.stand_in_credit(both, stand_ins, weights) == pytest.approx(6.0 * 0.53)  # one, not both
    neither = (0, None, "Fine and clear.")
    assert c.stand_in_credit(neither, stand_ins, weights) == 0.0
    assert (
        c.stand_in_credit((0, None, "Hove to in the gale."), {"storm": [("gale", 0.5)]}, {"storm": 4.0})
        == 2.0
    )


def test_a_pdf_answer_cites_the_page_its_quote_comes_from_wherever_the_marker_falls():
    """#32: a page was cited only when the `[page N]` marker fell inside the quoted sentence."""
    pdf = (
        "[page 1]\nThe survey began in March. The crew was small.\n\n"
        "[page 2]\nThe weather held for a week. Then the storm came.\n\n"
        "The ship came to anchor in Table Bay on 9 May.\n\n"
        "[page 3]\nThey left in June."
    )
    chunks, names, pages = c.document_chunks(pdf, 500, by_paragraph=True, with_pages=True)
    quote = "The ship came to anchor in Table Bay on 9 May."
    (index,) = [i for i, chunk in enumerate(chunks) if quote in chunk]
    assert c.page_of(quote, chunks[index], pages[index]) == "page 2"  # no marker in the quote
    # A passage holding two pages: the page of the marker before the quote, not the passage's first.
    merged = "[page 2]\nThe weather held.\n[page 3]\nThey left in June."
    assert c.page_of("They left in June.", merged, "page 2") == "page 3"
    assert c.with_sources([(quote, None, "page 2")], several=False) == [quote + " [source: page 2]"]
    assert c.with_sources([(quote, "log.pdf", "page 2")], several=True) == [
        quote + " [source: log.pdf, page 2]"
    ]
    assert c.with_sources([("x", None, None)], several=False) == ["x"]  # no pages: nothing to cite
    # Each strategy still compiles under RestrictedPython with the new helpers.
    for name in STRATEGIES:
        assert compile_restricted_exec(get_strategy(name)).errors == ()
