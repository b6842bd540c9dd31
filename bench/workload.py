"""Inputs and statistics shared by the benchmarks: a deterministic long text, medians with spread."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

_LINE = "Line {i:08d}: the quarterly filing lists revenue of {r} units and {c} customers in region {g}.\n"


def make_context(chars: int, salt: str = "") -> str:
    """`chars` characters of filing-like text; a different `salt` gives different text (no dedup)."""
    head = f"[{salt}]\n" if salt else ""
    lines = []
    size = len(head)
    i = 0
    while size < chars:
        line = _LINE.format(i=i, r=(i * 7919) % 100_000, c=(i * 104_729) % 10_000, g=i % 17)
        lines.append(line)
        size += len(line)
        i += 1
    return (head + "".join(lines))[:chars]


@dataclass
class Spread:
    """Median with min and max over runs (the suite's rule: at least 5 runs)."""

    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values), len(values))

    def fmt(self, unit: str = "s", digits: int = 3) -> str:
        return f"{self.median:.{digits}f} {unit} ({self.low:.{digits}f}–{self.high:.{digits}f})"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation): a value that was actually observed."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]
