"""Jinja filters that turn numbers and times into what a reader scans: 1.2 s, 12,345, $0.0042."""

from __future__ import annotations

from datetime import datetime

from rlm_shared.wording import plural


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def money(value: float | None) -> str:
    value = value or 0.0
    if value == 0:
        return "$0"
    if value < 0.01:
        return f"${value:.6f}"
    return f"${value:,.4f}"


def count(value: int | float | None) -> str:
    return f"{int(value or 0):,}"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "–"


def chars(value: int | None) -> str:
    if value is None:
        return "–"
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if value >= size:
            return f"{value / size:.1f}{unit} characters"
    return f"{value} characters"


FILTERS = {
    "duration": duration,
    "money": money,
    "count": count,
    "when": when,
    "chars": chars,
    "plural": plural,
}
