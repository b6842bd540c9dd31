"""Which passage each sub-call read, told from the prompts alone, so a list of calls is not four
identical "Question: …" lines.

A program asks many sub-calls with one template: the same opening (question, instructions) and
the same ending, the passage in between. The part the prompts of one batch do not share is the
passage; its first words, and where it sits in the execution's context (document, character
range), tell the calls apart. No metadata is needed, so traces written before this module read
the same way, whatever program (a root model's or a built-in strategy) wrote the prompts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: How many characters of a prompt's start and end are read to find its passage.
HEAD_CHARS = 1500
TAIL_CHARS = 200
#: Characters of the passage looked up in the context (enough to be unique, cheap to find).
PROBE_CHARS = 64
WORDS_CHARS = 60
#: Keys of a document object whose value names it, and those whose value is its text.
NAME_KEYS = ("name", "title", "filename", "file", "path", "id")
TEXT_KEYS = ("text", "content", "body")


@dataclass(frozen=True)
class PromptView:
    """What the tree query reads of a sub-call's prompt: its start, its end and its length."""

    head: str
    tail: str
    length: int


@dataclass(frozen=True)
class Passage:
    """The passage one call read: its place among the calls compared, and its text's start."""

    index: int
    start_in_prompt: int
    length: int | None
    words: str


@dataclass(frozen=True)
class Place:
    """Where a passage sits in the context: a document (None for a plain text) and a range."""

    document: str | None
    start: int
    end: int | None


def _common_prefix(texts: Sequence[str]) -> str:
    return os.path.commonprefix(list(texts))


def _cut_back_to_boundary(prefix: str) -> int:
    """The shared opening ends at the start of a line (or word): a passage whose first words
    happen to match another's keeps them."""
    line = prefix.rfind("\n")
    if line >= 0:
        return line + 1
    space = prefix.rfind(" ")
    return space + 1 if space >= 0 else 0


def _cut_forward_to_boundary(suffix: str) -> int:
    """Length of the shared ending, from the end of a line (or word) on."""
    for mark in ("\n", " "):
        at = suffix.find(mark)
        if at >= 0:
            return len(suffix) - at
    return 0


def template_edges(prompts: Sequence[PromptView]) -> list[tuple[int, int]] | None:
    """For each prompt, (opening, ending): how many characters it shares at its start and at its
    end with the prompt most like it, cut to line (or word) boundaries. Most like it, not all of
    them: one program may mix templates under one parent (a call asking for related words beside a
    batch of passages), and each template's calls still find their passages. None for fewer than
    two prompts: nothing to compare."""
    if len(prompts) < 2:
        return None
    openings = _longest_shared([p.head for p in prompts], lambda shared: _cut_back_to_boundary(shared))
    endings = _longest_shared(
        [p.tail[::-1] for p in prompts], lambda shared: _cut_forward_to_boundary(shared[::-1])
    )
    return list(zip(openings, endings, strict=True))


def _longest_shared(texts: list[str], cut: Any) -> list[int]:
    """Each text's longest prefix shared with any other, cut by `cut`. After sorting, the text
    sharing the longest prefix with a given one is a neighbour: O(n log n), not O(n²)."""
    order = sorted(range(len(texts)), key=texts.__getitem__)
    best = [""] * len(texts)
    for a, b in zip(order, order[1:], strict=False):
        shared = _common_prefix([texts[a], texts[b]])
        for i in (a, b):
            if len(shared) > len(best[i]):
                best[i] = shared
    return [cut(shared) for shared in best]


def passage_of(prompt: PromptView, index: int, edges: tuple[int, int] | None) -> Passage | None:
    """The passage of one prompt between the shared opening and ending; None where nothing is
    left (the prompts differ only past the characters read)."""
    if edges is None or edges == (0, 0):  # no shared template: the prompt is its own label
        return None
    opening, ending = edges
    rest = prompt.head[opening:]
    if not rest.strip():
        return None
    length = prompt.length - opening - ending
    return Passage(
        index=index, start_in_prompt=opening, length=length if length > 0 else None, words=first_words(rest)
    )


def passages(prompts: Sequence[PromptView]) -> list[Passage | None]:
    """The passage of each prompt of one batch, numbered in the batch's order."""
    edges = template_edges(prompts)
    return [
        passage_of(prompt, i, edges[i - 1] if edges else None) for i, prompt in enumerate(prompts, start=1)
    ]


def first_words(text: str, limit: int = WORDS_CHARS) -> str:
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0] or flat[:limit]
    return cut + "…"


def documents(kind: str, content: str) -> list[tuple[str | None, str]]:
    """The texts of a stored context a passage may come from, each with its name if it has one:
    a plain text; the values of an object (named by their keys); the items of a list (named by
    their `name`/`title`/... field, else their position)."""
    if kind == "str":
        return [(None, content)]
    try:
        value: Any = json.loads(content)
    except ValueError:
        return [(None, content)]
    if isinstance(value, dict):
        return [(str(key), _as_text(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [(_item_name(item, i), _as_text(item)) for i, item in enumerate(value)]
    return [(None, content)]


def _item_name(item: Any, position: int) -> str:
    if isinstance(item, dict):
        for key in NAME_KEYS:
            if isinstance(item.get(key), str | int) and str(item[key]).strip():
                return str(item[key])
    return f"[{position}]"


def _as_text(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for key in TEXT_KEYS:
            if isinstance(item.get(key), str):
                return item[key]
    return json.dumps(item, ensure_ascii=False)


def locate(docs: Sequence[tuple[str | None, str]], passage_head: str, length: int | None) -> Place | None:
    """Where the passage starting with `passage_head` sits in the context, if it is there."""
    probe = passage_head[:PROBE_CHARS]
    if len(probe.strip()) < 8:  # too short to say where it comes from
        return None
    for name, text in docs:
        start = text.find(probe)
        if start >= 0:
            end = min(start + length, len(text)) if length else None
            return Place(document=name, start=start, end=end)
    return None


def describe(passage: Passage, place: Place | None) -> str:
    """One line: `#2 · chars 1,200–2,000 of notes.txt · "ABSURDITY, n. A statement…"`."""
    parts = [f"#{passage.index}"]
    if place is not None:
        span = f"chars {place.start:,}–{place.end:,}" if place.end else f"from char {place.start:,}"
        parts.append(f"{span} of {place.document}" if place.document else span)
    elif passage.length:
        parts.append(f"{passage.length:,} chars")
    parts.append(f"“{passage.words}”")
    return " · ".join(parts)
