"""Counted nouns in what a person reads ("1 iteration", "2 iterations", "Up to 1 sub-call")."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`count` and `noun`, the noun in the plural (`many`, or `noun` + "s") unless count is 1."""
    return f"{count:,} {noun if count == 1 else (many or noun + 's')}"
