"""Geometry for the stats page's server-rendered SVG charts (the template draws them, autoescaped)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: Room a column's label (`MM-DD`, 12 px) needs.
LABEL_WIDTH = 38


@dataclass
class Bar:
    label: str
    value: float
    text: str
    x: float
    y: float
    width: float
    height: float
    css: str = ""
    #: Whether its label is written under it (columns too narrow for every label skip some).
    tick: bool = True


@dataclass
class Chart:
    bars: list[Bar]
    width: int
    height: int
    title: str
    #: Drawn as horizontal bars (one row per item) rather than columns over time.
    horizontal: bool = True
    #: Said instead of a chart whose every value is zero (an empty-looking chart reads as broken).
    note: str = ""


def bar_chart(
    title: str,
    items: Sequence[tuple[str, float]],
    fmt: Callable[[float], str],
    css: Callable[[str], str] | None = None,
    width: int = 380,
    row: int = 26,
    label_width: int = 140,
) -> Chart:
    """Horizontal bars, one row per item, scaled to the largest value. Drawn in a viewBox about
    as wide as a phone, so its 12 px text stays near 12 px on one (and grows a little on a desktop)."""
    top = max((value for _, value in items), default=0) or 1
    track = width - label_width - 90
    bars = []
    for i, (label, value) in enumerate(items):
        bars.append(
            Bar(
                label=label,
                value=value,
                text=fmt(value),
                x=label_width,
                y=i * row + 4,
                width=round(max(value / top * track, 1 if value else 0), 2),
                height=row - 8,
                css=css(label) if css else "",
            )
        )
    return Chart(bars=bars, width=width, height=max(row, len(items) * row), title=title)


def column_chart(
    title: str,
    items: Sequence[tuple[str, float]],
    fmt: Callable[[float], str],
    width: int = 380,
    height: int = 180,
) -> Chart:
    """Vertical columns over time (one per day), scaled to the largest value; labels under them."""
    top = max((value for _, value in items), default=0) or 1
    plot = height - 36
    slot = width / max(len(items), 1)
    every = max(1, math.ceil(LABEL_WIDTH / slot))  # labels that would overlap are skipped
    bars = []
    for i, (label, value) in enumerate(items):
        h = round(max(value / top * plot, 1 if value else 0), 2)
        bars.append(
            Bar(
                label=label,
                value=value,
                text=fmt(value),
                x=round(i * slot + (slot - min(slot * 0.7, 40)) / 2, 2),
                y=round(16 + plot - h, 2),
                width=round(min(slot * 0.7, 40), 2),
                height=h,
                tick=(len(items) - 1 - i) % every == 0,  # the newest day always has its label
            )
        )
    return Chart(bars=bars, width=width, height=height, title=title, horizontal=False)


def unless_all_zero(chart: Chart, note: str) -> Chart:
    """The chart, or `note` in its place when every bar is zero."""
    if chart.bars and not any(bar.value for bar in chart.bars):
        chart.bars, chart.note = [], note
    return chart


#: Fewer days than this read better as one labelled row each than as lone columns.
MIN_COLUMNS = 4


def time_chart(title: str, items: Sequence[tuple[str, float]], fmt: Callable[[float], str]) -> Chart:
    """A value per day: columns over time, rows when there are only a few days, and a sentence
    when every value is zero (free local models, unpriced ones)."""
    if items and not any(value for _, value in items):
        days = f"{len(items)} day{'s' if len(items) != 1 else ''}"
        chart = Chart(bars=[], width=0, height=0, title=title)
        chart.note = f"All {fmt(0)} over {days}: the model calls recorded no cost (local or unpriced models)."
        return chart
    if len(items) < MIN_COLUMNS:
        return bar_chart(title, items, fmt, label_width=60)
    return column_chart(title, items, fmt)
