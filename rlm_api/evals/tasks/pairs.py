"""OOLONG-Pairs-style questions: which pairs of users satisfy a condition over all their records
(the quadratic case: the answer grows with the square of the users). Scored by F1 over the pairs
(the RLM paper's OOLONG-Pairs metric).

Each user writes about two or three topics of their own, so "both users wrote about X" holds for
some pairs and not others.
"""

from __future__ import annotations

import random
from itertools import combinations

from rlm_api.evals.tasks import TaskError, TaskItem
from rlm_api.evals.tasks.records import LABELS, PREAMBLE, make_records, text_of


def pairs(size: int, seed: int, count: int) -> list[TaskItem]:
    if size < 2000:
        raise TaskError(f"size {size}: the pairs task needs at least 2,000 characters")
    rng = random.Random(f"pairs/{seed}/{size}")
    labels = list(LABELS)
    items = []
    for index in range(count):
        users = sorted(rng.sample(range(100, 1000), min(40, 8 + size // 8000)))
        topics = {user: rng.sample(labels, rng.choice((2, 3))) for user in users}
        records = make_records(size, rng, users, lambda u, r, t=topics: r.choice(t[u]))
        wrote: dict[str, set[int]] = {label: set() for label in labels}
        for record in records:
            wrote[record.label].add(record.user)
        label = max(labels, key=lambda name: (0 < len(wrote[name]) <= 12, rng.random()))
        gold = sorted(combinations(sorted(wrote[label]), 2))
        items.append(
            TaskItem(
                id=f"pairs-{size}-{index}",
                task="pairs",
                input=text_of(records),
                question=PREAMBLE
                + f"List every pair of users (by User number) who both wrote at least one message "
                f"about {label}. Write each pair once as (smaller, larger), one pair a line.",
                answers=tuple(f"{a},{b}" for a, b in gold),
                scorer="pairs_f1",
                kind=f"both {label}",
                meta={"users": len(users), "records": len(records), "pairs": len(gold)},
            )
        )
    return items
