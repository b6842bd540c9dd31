"""The report: per configuration, task and input size, accuracy, tokens, cost, wall time,
sub-calls, depth and failures, with the base model alone beside each configuration.

JSON for programs (`build_report`), Markdown for people (`markdown`). Accuracy is the mean of
the items' scores (each task's own scorer); cost and tokens are means per item; wall time the
median; depth the deepest trace node.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any


def item_dict(item: Any) -> dict[str, Any]:
    result = item.result or {}
    return {
        "seq": item.seq,
        "config": item.config,
        "baseline": item.baseline,
        "task": item.task,
        "item_id": item.item_id,
        "kind": result.get("kind"),
        "size": item.size,
        "input_chars": result.get("input_chars"),
        "fingerprint": result.get("fingerprint"),
        "scorer": item.scorer,
        "answers": item.answers,
        "score": item.score,
        "execution_id": item.execution_id,
        "links": {
            "execution": f"/api/executions/{item.execution_id}",
            "trace": f"/executions/{item.execution_id}",
        }
        if item.execution_id
        else {},
        **{
            k: result.get(k)
            for k in (
                "status",
                "answer",
                "error",
                "input_tokens",
                "output_tokens",
                "cost_usd",
                "seconds",
                "sub_calls",
                "llm_calls",
                "depth",
            )
        },
    }


def _row(config: str, baseline: bool, task: str, size: int, items: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(items)
    seconds = [i["seconds"] for i in items if i.get("seconds") is not None]
    return {
        "config": config,
        "baseline": baseline,
        "task": task,
        "size": size,
        "items": n,
        "accuracy": round(sum(i["score"] or 0.0 for i in items) / n, 4),
        "input_tokens": round(sum(i.get("input_tokens") or 0 for i in items) / n, 1),
        "output_tokens": round(sum(i.get("output_tokens") or 0 for i in items) / n, 1),
        "cost_usd": round(sum(i.get("cost_usd") or 0.0 for i in items) / n, 6),
        "seconds": round(statistics.median(seconds), 2) if seconds else None,
        "sub_calls": round(sum(i.get("sub_calls") or 0 for i in items) / n, 1),
        "depth": max((i.get("depth") or 0) for i in items),
        "failures": sum(1 for i in items if i.get("status") != "succeeded"),
    }


def summary_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (configuration, task, size), configurations first, then baselines."""
    groups: dict[tuple[bool, str, str, int], list[dict[str, Any]]] = defaultdict(list)
    order: list[tuple[bool, str, str, int]] = []
    for item in items:
        key = (item["baseline"], item["config"], item["task"], item["size_bucket"])
        if key not in groups:
            order.append(key)
        groups[key].append(item)
    return [
        _row(c, b, t, s, groups[(b, c, t, s)])
        for b, c, t, s in sorted(order, key=lambda k: (k[0], order.index(k)))
    ]


def build_report(run: Any, items: list[Any], cache_saved_usd: float = 0.0) -> dict[str, Any]:
    rows_in = [item_dict(i) for i in items]
    for row in rows_in:
        row["size_bucket"] = _bucket(row["size"], run.spec.get("sizes") or [])
    rows = summary_rows(rows_in)
    totals: dict[str, dict[str, Any]] = {}
    for item in rows_in:
        t = totals.setdefault(item["config"], {"items": 0, "score": 0.0, "cost_usd": 0.0, "failures": 0})
        t["items"] += 1
        t["score"] += item["score"] or 0.0
        t["cost_usd"] += item.get("cost_usd") or 0.0
        t["failures"] += item.get("status") != "succeeded"
    for t in totals.values():
        t["accuracy"] = round(t.pop("score") / max(1, t["items"]), 4)
        t["cost_usd"] = round(t["cost_usd"], 6)
    return {
        "eval_id": run.id,
        "name": run.name,
        "spec": {k: v for k, v in run.spec.items() if k != "cache_saved_usd_at_start"},
        "rows": rows,
        "totals": totals,
        "cache": {"saved_usd": round(max(0.0, cache_saved_usd), 6)},
        "items": [{k: v for k, v in i.items() if k != "size_bucket"} for i in rows_in],
    }


def _bucket(size: int, sizes: list[int]) -> int:
    """Generated items are a few characters off their nominal size (whole records, a planted
    needle); group them under the nominal size. Fixed sets keep their own."""
    near = [s for s in sizes if abs(size - s) <= max(200, s // 20)]
    return near[0] if near else size


def _money(value: float) -> str:
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def markdown(report: dict[str, Any], base_url: str = "") -> str:
    """The report as Markdown: the side-by-side table, totals, and every item linked to its trace."""
    lines = [
        f"# Eval: {report['name']}",
        "",
        f"Eval id `{report['eval_id']}`, seed {report['spec'].get('seed')}.",
        "",
    ]
    baselines = {(r["task"], r["size"]): r for r in report["rows"] if r["baseline"]}
    lines += [
        "| task | size (chars) | configuration | accuracy | base model alone | tokens in / out | cost / item "
        "| wall s (median) | sub-calls | depth | failures |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        base = baselines.get((r["task"], r["size"])) if not r["baseline"] else None
        base_accuracy = f"{base['accuracy']:.2f}" if base else "—"
        lines.append(
            f"| {r['task']} | {r['size']:,} | {r['config']} | {r['accuracy']:.2f} | {base_accuracy} "
            f"| {r['input_tokens']:,.0f} / {r['output_tokens']:,.0f} | {_money(r['cost_usd'])} "
            f"| {r['seconds'] if r['seconds'] is not None else '—'} | {r['sub_calls']} | {r['depth']} "
            f"| {r['failures']}/{r['items']} |"
        )
    lines += ["", "| configuration | items | accuracy | total cost | failures |", "|---|---|---|---|---|"]
    for name, t in report["totals"].items():
        lines.append(
            f"| {name} | {t['items']} | {t['accuracy']:.2f} | {_money(t['cost_usd'])} | {t['failures']} |"
        )
    lines += ["", f"Model call cache: {_money(report['cache']['saved_usd'])} saved in this run.", ""]
    lines += [
        "## Items",
        "",
        "| configuration | item | score | answer | execution |",
        "|---|---|---|---|---|",
    ]
    for i in report["items"]:
        answer = (i.get("answer") or i.get("error") or "").replace("|", "\\|").replace("\n", " ")[:80]
        link = f"[{i['execution_id'][:8]}]({base_url}{i['links']['trace']})" if i.get("execution_id") else "—"
        score = "—" if i["score"] is None else f"{i['score']:.2f}"
        lines.append(f"| {i['config']} | {i['item_id']} | {score} | {answer} | {link} |")
    return "\n".join(lines) + "\n"
