"""Labelled records for the OOLONG-style tasks: short customer messages whose topic (the label) is
implied by the wording, never written out, so an answer needs every record read and classified.

One record a line: `Date: 2024-03-07 || User: 48213 || Message: ...`. The message templates of
each label are distinct enough that a reader (a model, or code that knows the words) can classify
them, as OOLONG's records are questions whose coarse TREC type must be inferred.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

LABELS: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged twice for my {thing} this month, please look at my invoice.",
        "Why does my latest invoice show a {amount} fee I never agreed to?",
        "My card was billed {amount} for the {thing} plan instead of the discounted price.",
        "Can you send me a corrected invoice for the {thing} subscription?",
    ),
    "shipping": (
        "My {thing} has not arrived yet and the tracking number shows no movement.",
        "The courier left my {thing} at the wrong address again.",
        "How long does delivery to {city} usually take for a {thing}?",
        "The parcel with my {thing} was marked delivered but nothing is at my door.",
    ),
    "technical": (
        "The {thing} app crashes every time I open the settings page.",
        "After the last update my {thing} will not connect to the wifi anymore.",
        "I get an error code {code} when I try to sync my {thing}.",
        "The screen of my {thing} freezes for a minute after it starts.",
    ),
    "account": (
        "I cannot log in since I changed my email address.",
        "Please help me reset the password of the profile linked to my {thing}.",
        "How do I add a second user to my login for the {thing}?",
        "My sign-in was locked after three attempts from {city}.",
    ),
    "refund": (
        "I returned the {thing} two weeks ago and still have not got my money back.",
        "I would like my money back for the {thing}, it was not what I ordered.",
        "When will the {amount} for the cancelled {thing} order be returned to my card?",
        "The {thing} broke after a day; I want my money back rather than a repair.",
    ),
}
THINGS = ("headphones", "kettle", "router", "camera", "blender", "watch", "speaker", "lamp", "tablet")
CITIES = ("Leeds", "Porto", "Ghent", "Lyon", "Bergen", "Graz", "Cork", "Turin")


@dataclass(frozen=True)
class Record:
    date: str
    user: int
    label: str
    message: str

    def line(self) -> str:
        return f"Date: {self.date} || User: {self.user} || Message: {self.message}"


def message(label: str, rng: random.Random) -> str:
    template = rng.choice(LABELS[label])
    return template.format(
        thing=rng.choice(THINGS),
        city=rng.choice(CITIES),
        amount=f"${rng.randrange(5, 400)}.{rng.randrange(0, 99):02d}",
        code=f"E{rng.randrange(100, 999)}",
    )


def make_records(size: int, rng: random.Random, users: list[int], label_of_user) -> list[Record]:  # noqa: ANN001
    """Records until their lines fill `size` characters; each record's user drawn from `users`
    and its label from `label_of_user(user, rng)`."""
    records: list[Record] = []
    length = 0
    while True:
        user = rng.choice(users)
        label = label_of_user(user, rng)
        date = f"20{rng.randrange(22, 25)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        record = Record(date, user, label, message(label, rng))
        if length + len(record.line()) + 1 > size and records:
            return records
        records.append(record)
        length += len(record.line()) + 1


def text_of(records: list[Record]) -> str:
    return "\n".join(r.line() for r in records)


LABEL_LIST = ", ".join(LABELS)
PREAMBLE = (
    "Each line of the input is a customer message. Every message is about exactly one of these "
    f"topics: {LABEL_LIST}. The topic is not written in the line; decide it from the message. "
)
