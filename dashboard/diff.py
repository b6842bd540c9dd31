"""Memory diffs: what each step added to or removed from an agent's memory blocks (difflib)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

CONTEXT_LINES = 2


@dataclass
class DiffLine:
    kind: str  # "add", "del", "ctx" or "hunk"
    text: str


@dataclass
class BlockDiff:
    label: str
    change: str  # "added", "removed" or "changed"
    lines: list[DiffLine] = field(default_factory=list)

    @property
    def added(self) -> int:
        return sum(1 for line in self.lines if line.kind == "add")

    @property
    def removed(self) -> int:
        return sum(1 for line in self.lines if line.kind == "del")


def diff_blocks(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[BlockDiff]:
    """Per-block line diffs between two snapshots; unchanged blocks are left out."""
    before, after = before or {}, after or {}
    out = []
    for label in sorted(set(before) | set(after)):
        old, new = str(before.get(label) or ""), str(after.get(label) or "")
        if old == new:
            continue
        change = "added" if label not in before or not old else "removed" if not new else "changed"
        out.append(BlockDiff(label=label, change=change, lines=_line_diff(old, new)))
    return out


def _line_diff(old: str, new: str) -> list[DiffLine]:
    old_lines, new_lines = old.splitlines(), new.splitlines()
    if old_lines and new_lines[: len(old_lines)] == old_lines:
        return _appended(old_lines, new_lines)
    lines = []
    raw = difflib.unified_diff(old_lines, new_lines, lineterm="", n=CONTEXT_LINES)
    for line in raw:
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            lines.append(DiffLine("hunk", line))
        elif line.startswith("+"):
            lines.append(DiffLine("add", line[1:]))
        elif line.startswith("-"):
            lines.append(DiffLine("del", line[1:]))
        else:
            lines.append(DiffLine("ctx", line[1:]))
    return lines


def _appended(old_lines: list[str], new_lines: list[str]) -> list[DiffLine]:
    """The common case (`memory.append`) without a matcher: the same hunk difflib would print."""
    context = old_lines[-CONTEXT_LINES:]
    start = len(old_lines) - len(context) + 1
    header = f"@@ -{start},{len(context)} +{start},{len(context) + len(new_lines) - len(old_lines)} @@"
    return (
        [DiffLine("hunk", header)]
        + [DiffLine("ctx", line) for line in context]
        + [DiffLine("add", line) for line in new_lines[len(old_lines) :]]
    )
