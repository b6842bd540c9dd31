"""Passage ranking for the REPL's `rank_passages`: BM25 over Snowball-stemmed words.

Why here and not in the REPL: the sandbox allows only pure-Python standard modules, and ranking
with a kept IR library (bm25s, PyStemmer) beats hand-written keyword counting: rare words weigh
more, long passages do not win by length, and `killed` also finds `kill`. The worker answers the
call; the code in the REPL sees only indices and scores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from typing import Any

#: Single letters and digits are words too: "3 April", "A. Nkosi".
WORD_PATTERN = r"(?u)\b\w+\b"
MAX_PASSAGES = 100_000
#: Passages tokenized between two checks of `should_stop`.
STEP = 5_000


class RankingError(ValueError):
    """Arguments `rank_passages` cannot rank."""


@cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def preload() -> None:
    """Import bm25s and the stemmer ahead of the first ranking (about a second on a small machine)."""
    import bm25s  # noqa: F401

    _stemmer()


def rank_passages(
    passages: list[str], query: str, k: int = 10, should_stop: Callable[[], None] | None = None
) -> list[tuple[int, float]]:
    """The `k` passages that best match `query`, best first, as (index, BM25 score) pairs.

    Passages sharing no word with the query are left out, so the list may be shorter than `k`.
    `should_stop` is called between the steps (tokenizing, indexing, retrieving); it raises to stop.
    """
    stop = should_stop or (lambda: None)
    if len(passages) > MAX_PASSAGES:
        raise RankingError(f"rank_passages ranks at most {MAX_PASSAGES:,} passages, not {len(passages):,}")
    if k < 1:
        raise RankingError("k must be at least 1")
    if not passages or not query.strip():
        return []
    import bm25s
    from bm25s.tokenization import Tokenizer

    # bm25s sets its own logger to DEBUG on import, so every index build reached the user's stderr.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    tokenizer = Tokenizer(stemmer=_stemmer(), stopwords="en", splitter=WORD_PATTERN)
    corpus: list[Any] = []
    for start in range(0, len(passages), STEP):
        stop()
        corpus += tokenizer.tokenize(passages[start : start + STEP], return_as="ids", show_progress=False)
    stop()
    query_ids = tokenizer.tokenize([query], update_vocab=False, return_as="ids", show_progress=False)
    if not any(corpus) or not query_ids[0]:
        return []
    retriever = bm25s.BM25()
    retriever.index(corpus, show_progress=False)
    stop()
    found, scores = retriever.retrieve(query_ids, k=min(k, len(passages)), show_progress=False, n_threads=1)
    return [(int(i), round(float(s), 4)) for i, s in zip(found[0], scores[0], strict=True) if s > 0]
