"""Letta-style memory: labelled text blocks with size limits, edited by the model's code."""

from __future__ import annotations

import threading

DEFAULT_BLOCK_LIMIT = 20_000
MAX_BLOCKS = 32


class MemoryError_(Exception):
    """A memory edit the model asked for cannot be done (unknown label, block full, ...)."""


MAX_LABEL = 64


def blocks_problem(blocks: dict[str, str], limit: int = DEFAULT_BLOCK_LIMIT) -> str | None:
    """Why `blocks` break the limits an edit from the model's code must keep (labels of 1 to 64
    characters, at most 32 blocks, each at most `limit` characters), or None. Every way blocks
    enter (a new session over the API, a session loaded for a run) checks the same limits."""
    if len(set(blocks) | {"learnings"}) > MAX_BLOCKS:  # `learnings` always exists
        return f"{len(blocks)} memory blocks; at most {MAX_BLOCKS} (with `learnings`)"
    for label, text in blocks.items():
        if not label or len(label) > MAX_LABEL:
            return f"memory labels are 1 to {MAX_LABEL} characters ({str(label)[:70]!r})"
        if len(text) > limit:
            return f"memory block {label!r} holds {len(text):,} characters; the limit is {limit:,}"
    return None


class MemoryBlocks:
    """A thread-safe set of labelled blocks. `learnings` always exists."""

    def __init__(self, blocks: dict[str, str] | None = None, limit: int = DEFAULT_BLOCK_LIMIT) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._blocks: dict[str, str] = {"learnings": ""}
        for label, text in (blocks or {}).items():  # blocks stored before the limits: cut to them
            label, text = str(label)[:MAX_LABEL], str(text)[-limit:]
            if label and (label in self._blocks or len(self._blocks) < MAX_BLOCKS):
                self._blocks[label] = text

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return dict(self._blocks)

    def read(self, label: str) -> str:
        with self._lock:
            if label not in self._blocks:
                raise MemoryError_(f"no memory block named {label!r}; blocks: {sorted(self._blocks)}")
            return self._blocks[label]

    def set(self, label: str, text: str) -> None:
        with self._lock:
            self._check(label, text)
            self._blocks[label] = text

    def append(self, label: str, text: str) -> None:
        with self._lock:
            current = self._blocks.get(label, "")
            new = f"{current}\n{text}" if current else text
            self._check(label, new)
            self._blocks[label] = new

    def replace(self, label: str, old: str, new: str) -> None:
        with self._lock:
            if label not in self._blocks:
                raise MemoryError_(f"no memory block named {label!r}")
            if old not in self._blocks[label]:
                raise MemoryError_(f"{old!r} not found in memory block {label!r}")
            updated = self._blocks[label].replace(old, new, 1)
            self._check(label, updated)
            self._blocks[label] = updated

    def merge_learnings(self, child_blocks: dict[str, str], parent_before: dict[str, str]) -> None:
        """Fold the lines a child added to `learnings` back into ours, without duplicates."""
        known = set(parent_before.get("learnings", "").splitlines())
        with self._lock:
            mine = self._blocks.get("learnings", "")
            present = set(mine.splitlines())
            added = [
                line
                for line in child_blocks.get("learnings", "").splitlines()
                if line.strip() and line not in known and line not in present
            ]
            if added:
                merged = "\n".join([mine, *added]) if mine else "\n".join(added)
                self._blocks["learnings"] = merged[-self._limit :]

    def _check(self, label: str, text: str) -> None:
        if not label or len(label) > MAX_LABEL:
            raise MemoryError_(f"memory labels are 1 to {MAX_LABEL} characters")
        if label not in self._blocks and len(self._blocks) >= MAX_BLOCKS:
            raise MemoryError_(f"at most {MAX_BLOCKS} memory blocks")
        if len(text) > self._limit:
            raise MemoryError_(
                f"memory block {label!r} would hold {len(text)} characters; the limit is {self._limit}"
            )
