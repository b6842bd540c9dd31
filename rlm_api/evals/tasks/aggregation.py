"""OOLONG-style aggregation: thousands of labelled records whose labels must be inferred, and
questions that need every one of them (OOLONG-synth's counting, most-frequent and comparison
questions).

Scored as OOLONG scores them (Bertsch et al., 2025): a count by 0.75^|error| (`numeric`), a label
by exact match (`exact`), a comparison by whether the reply holds the right phrase
(`comparison`: the one right phrase of "more common than" / "less common than" / "same
frequency as").
"""

from __future__ import annotations

import random
from collections import Counter

from rlm_api.evals.tasks import TaskError, TaskItem
from rlm_api.evals.tasks.records import LABELS, PREAMBLE, make_records, text_of

QUESTIONS = ("count", "most_frequent", "comparison")
USERS = list(range(10000, 99999, 7))
COMPARISONS = ("more common than", "less common than", "same frequency as")


def _weights(rng: random.Random) -> dict[str, float]:
    return {label: rng.uniform(0.5, 2.0) for label in LABELS}


def aggregation(size: int, seed: int, count: int) -> list[TaskItem]:
    if size < 2000:
        raise TaskError(f"size {size}: the aggregation task needs at least 2,000 characters")
    rng = random.Random(f"aggregation/{seed}/{size}")
    first = rng.randrange(len(QUESTIONS))  # three items ask the three kinds; one a seeded one
    items = []
    for index in range(count):
        kind = QUESTIONS[(first + index) % len(QUESTIONS)]
        weights = _weights(rng)
        labels, chances = list(weights), list(weights.values())
        while True:
            records = make_records(size, rng, USERS, lambda u, r, ls=labels, cs=chances: r.choices(ls, cs)[0])
            counts = Counter(r.label for r in records)
            ranked = counts.most_common()
            if len(ranked) < 2 or ranked[0][1] != ranked[1][1]:
                break  # one most frequent label, so the gold answer is unique
        question, answers, scorer = _question(kind, counts, rng)
        items.append(
            TaskItem(
                id=f"aggregation-{size}-{index}",
                task="aggregation",
                input=text_of(records),
                question=PREAMBLE + question,
                answers=answers,
                scorer=scorer,
                kind=kind,
                meta={"records": len(records), "counts": dict(sorted(counts.items()))},
            )
        )
    return items


def _question(kind: str, counts: Counter, rng: random.Random) -> tuple[str, tuple[str, ...], str]:
    if kind == "count":
        label = rng.choice(list(LABELS))
        return (
            f"How many messages are about {label}? Reply with only the number.",
            (str(counts[label]),),
            "numeric",
        )
    if kind == "most_frequent":
        return (
            "Which topic do the most messages have? Reply with only the topic.",
            (counts.most_common(1)[0][0],),
            "exact",
        )
    first, second = rng.sample(list(LABELS), 2)
    if counts[first] > counts[second]:
        relation = COMPARISONS[0]
    elif counts[first] < counts[second]:
        relation = COMPARISONS[1]
    else:
        relation = COMPARISONS[2]
    return (
        f"Is the topic {first} more common than, less common than, or the same frequency as the "
        f"topic {second}? Reply with one of: more common than, less common than, same frequency as.",
        (relation,),
        "comparison",
    )
