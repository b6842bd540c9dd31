"""`rank_passages`: BM25 over stemmed words (bm25s + PyStemmer), on the worker side of the REPL."""

from __future__ import annotations

import pytest

from rlm_worker.engine.retrieval import RankingError, rank_passages

PASSAGES = [
    "Wind SSE, light airs. Washed decks and aired bedding.",
    "Seaman John Pellow fell from the foretopsail yard and was killed. Buried him at sea.",
    "Came to anchor in Table Bay, Cape Town, at 11 a.m.",
    "Voyage ended, 144 days from Falmouth. All hands well save the cook.",
]


def test_the_passage_with_the_rarest_words_comes_first_and_stems_match():
    ranked = rank_passages(PASSAGES, "Who was kill and buried?", 3)
    assert ranked[0][0] == 1 and ranked[0][1] > 0
    assert [i for i, _ in rank_passages(PASSAGES, "anchoring at Cape Town", 4)][0] == 2  # anchor(ing)


def test_passages_sharing_no_word_are_left_out():
    assert [i for i, _ in rank_passages(PASSAGES, "voyage", 4)] == [3]
    assert rank_passages(PASSAGES, "albatross zeppelin", 4) == []
    assert rank_passages([], "voyage", 4) == [] and rank_passages(PASSAGES, "  ", 4) == []


def test_single_letters_and_numbers_count():
    assert rank_passages(PASSAGES, "144", 2)[0][0] == 3


def test_bad_arguments_are_refused():
    with pytest.raises(RankingError, match="k must be at least 1"):
        rank_passages(PASSAGES, "voyage", 0)


def test_ranking_prints_nothing_on_the_users_stderr(capfd):
    """bm25s turns its logger to DEBUG on import; `rlm run` showed its "Building index" line."""
    import logging

    logging.basicConfig(force=True)  # a root handler as `rlm run` has one
    try:
        rank_passages(PASSAGES, "anchor", 2)
    finally:
        logging.basicConfig(force=True, handlers=[logging.NullHandler()])
    assert "bm25s" not in capfd.readouterr().err
