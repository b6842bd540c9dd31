"""Scorers: a reply and the accepted answers to a score in [0, 1], each as its task's paper scores.

- `contains_any`: 1 if the reply holds any accepted answer (S-NIAH as RULER's string match;
  OOLONG's comparison phrases).
- `exact`: 1 if the reply, stripped of an "Answer:"/"Label:" prefix, quotes and end punctuation,
  is an accepted answer (OOLONG's labels).
- `comparison`: 1 if the reply holds the accepted phrase and no other of "more common than",
  "less common than", "same frequency as" (OOLONG matches the phrase; a reply listing all three
  would pass that).
- `numeric`: 0.75^|gold - reply| for the first number in the reply (OOLONG's counts).
- `f1`: F1 of the accepted answers found in the reply (multi-needle recall and precision: an item
  of the reply that is no accepted answer counts against precision).
- `pairs_f1`: F1 over the (a, b) number pairs in the reply (OOLONG-Pairs, as the RLM paper).
- `abstain`: for a question the input does not answer: 1 if the reply says so (NONE, no answer).

Comparison is case-insensitive, with thousands separators dropped (`2,316` is `2316`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
PAIR = re.compile(r"(\d+)\s*[,;&/-]\s*(\d+)|(\d+)\s+and\s+(\d+)")
PREFIX = re.compile(r"^\s*(?:final\s+)?(?:answer|label|topic)\s*[:=-]\s*", re.I)
ITEM_SPLIT = re.compile(r"[,;\n]|\band\b")
NO_ANSWER = re.compile(r"^\s*(none|no answer|not (?:found|stated|given|mentioned))\b", re.I)


def plain(text: str) -> str:
    return re.sub(r"(?<=\d),(?=\d{3})", "", (text or "").strip().lower())


def _bare(text: str) -> str:
    text = PREFIX.sub("", plain(text))
    return text.strip().strip("\"'`*").rstrip(".!").strip()


def contains_any(reply: str, answers: Sequence[str]) -> float:
    if not answers:
        return abstain(reply, answers)
    return float(any(plain(a) in plain(reply) for a in answers))


def exact(reply: str, answers: Sequence[str]) -> float:
    if not answers:
        return abstain(reply, answers)
    return float(_bare(reply) in {_bare(a) for a in answers})


COMPARISONS = ("more common than", "less common than", "same frequency as")


def comparison(reply: str, answers: Sequence[str]) -> float:
    said = {phrase for phrase in COMPARISONS if phrase in plain(reply)}
    return float(len(said) == 1 and said <= {plain(a) for a in answers})


def numeric(reply: str, answers: Sequence[str]) -> float:
    found = NUMBER.search(plain(reply))
    if found is None or not answers:
        return 0.0
    gold = float(plain(answers[0]))
    return 0.75 ** abs(gold - float(found.group()))


def _f1(found: set[str], predicted: int, gold: set[str]) -> float:
    if not gold:
        return 1.0 if predicted == 0 else 0.0
    if not found or predicted == 0:
        return 0.0
    precision, recall = len(found) / predicted, len(found) / len(gold)
    return 2 * precision * recall / (precision + recall)


def f1(reply: str, answers: Sequence[str]) -> float:
    gold = {plain(a) for a in answers}
    parts = [p.strip().strip(".") for p in ITEM_SPLIT.split(plain(reply)) if p.strip().strip(".")]
    if NO_ANSWER.match(plain(reply)):
        parts = []
    found = {g for g in gold if any(g in part for part in parts)}
    return _f1(found, max(len(parts), len(found)), gold)


def pairs_f1(reply: str, answers: Sequence[str]) -> float:
    gold = {tuple(sorted(int(n) for n in a.split(","))) for a in answers}
    predicted = set()
    for match in PAIR.finditer(plain(reply)):
        numbers = [int(n) for n in match.groups() if n is not None]
        predicted.add(tuple(sorted(numbers)))
    found = predicted & gold
    return _f1({str(p) for p in found}, len(predicted), {str(g) for g in gold})


def abstain(reply: str, answers: Sequence[str]) -> float:
    """1 when the reply says the input does not answer (for items with no accepted answer)."""
    if answers:
        return contains_any(reply, answers)
    return float(not (reply or "").strip() or bool(NO_ANSWER.match(reply)))


SCORERS: dict[str, Callable[[str, Sequence[str]], float]] = {
    "contains_any": contains_any,
    "exact": exact,
    "comparison": comparison,
    "numeric": numeric,
    "f1": f1,
    "pairs_f1": pairs_f1,
    "abstain": abstain,
}


def score(scorer: str, reply: str | None, answers: Sequence[str]) -> float:
    """The score of `reply` (None: the execution gave none) under `scorer`."""
    return round(SCORERS[scorer](reply or "", answers), 4)
