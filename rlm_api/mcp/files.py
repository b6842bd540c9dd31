"""Which files the MCP server may read: only under the operator's `MCP_FILES_ROOT`.

A path is taken relative to the root (an absolute path must already lie inside it), resolved
with every symlink followed, and refused unless the result is the root or lies under it; so
`..`, an absolute path elsewhere and a link pointing out all fail the same way. Inside a folder,
the document reader never follows links (rlm_worker/documents).
"""

from __future__ import annotations

from pathlib import Path


class FileRefused(ValueError):
    """The path may not be read; the message says why without revealing what lies outside."""


def resolve_under_root(root: str | None, requested: str) -> Path:
    if not root:
        raise FileRefused("reading files is off on this server: the operator has not set MCP_FILES_ROOT")
    if not requested or not requested.strip() or "\0" in requested:
        raise FileRefused("give a path relative to the files root (e.g. `reports/2024.pdf`, or `.` for all)")
    base = Path(root).resolve(strict=True)
    target = (base / requested.strip()).resolve(strict=False)
    if target != base and not target.is_relative_to(base):
        raise FileRefused(f"{requested} is outside the files root; paths are relative to it")
    if not target.exists():
        raise FileRefused(f"{requested} does not exist under the files root")
    return target


def relative_name(root: str, path: Path) -> str:
    """How the agent named it: the path relative to the root (`.` for the root itself)."""
    return str(path.relative_to(Path(root).resolve())) or "."
