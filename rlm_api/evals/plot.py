"""Accuracy and cost per item against input size, one line per configuration (dashed: the base
model alone), one column per task. matplotlib draws it once and writes both the SVG the dashboard
shows and the PNG for reports: one well-kept library for both formats, with the non-interactive
Agg backend (no display needed)."""

from __future__ import annotations

import io
from typing import Any


def _figure(report: dict[str, Any]):  # noqa: ANN202 - a matplotlib Figure
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows = report["rows"]
    tasks = list(dict.fromkeys(r["task"] for r in rows)) or ["(none)"]
    figure = Figure(figsize=(3.2 * len(tasks) + 1.5, 5.4), layout="constrained")
    axes = figure.subplots(2, len(tasks), squeeze=False)
    configs = list(dict.fromkeys((r["config"], r["baseline"]) for r in rows))
    for column, task in enumerate(tasks):
        for config, baseline in configs:
            mine = sorted(
                (r for r in rows if r["task"] == task and r["config"] == config), key=lambda r: r["size"]
            )
            if not mine:
                continue
            sizes = [r["size"] for r in mine]
            style = {"linestyle": "--" if baseline else "-", "marker": "o", "label": config}
            axes[0][column].plot(sizes, [r["accuracy"] for r in mine], **style)
            axes[1][column].plot(sizes, [r["cost_usd"] for r in mine], **style)
        axes[0][column].set_title(task)
        axes[0][column].set_ylim(-0.05, 1.05)
        axes[1][column].set_ylim(bottom=0)
        for row in (0, 1):
            axes[row][column].set_xscale("log", base=2)
            axes[row][column].grid(True, alpha=0.3)
        axes[1][column].set_xlabel("input size (characters)")
    axes[0][0].set_ylabel("accuracy")
    axes[1][0].set_ylabel("cost per item (USD)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        figure.legend(
            handles, labels, loc="outside lower center", ncols=min(3, len(labels)), fontsize="small"
        )
    return figure


def render(report: dict[str, Any], fmt: str) -> bytes:
    """The plot as `svg` or `png` bytes."""
    buffer = io.BytesIO()
    _figure(report).savefig(buffer, format=fmt, dpi=110, metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()
