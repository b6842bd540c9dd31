"""Reading the model's reply: fenced code cells and a FINAL(...) written outside a fence."""

from __future__ import annotations

import re

_FENCE = re.compile(r"```(?:repl|python|py)[ \t]*\n(.*?)```", re.DOTALL)
_FINAL_LINE = re.compile(r"^\s*FINAL\((.*)\)\s*$", re.DOTALL)
_FINAL_VAR_LINE = re.compile(r"^\s*FINAL_VAR\(\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?\s*\)\s*$")


def extract_code_cells(reply: str) -> list[str]:
    """Every ```repl / ```python block, in order."""
    return [m.group(1) for m in _FENCE.finditer(reply) if m.group(1).strip()]


def text_outside_fences(reply: str) -> str:
    return re.sub(r"```.*?```", "", reply, flags=re.DOTALL)


def find_bare_final(reply: str) -> tuple[str, str] | None:
    """A FINAL(...) or FINAL_VAR(...) line outside any fence: ("value", text) or ("var", name)."""
    for raw_line in text_outside_fences(reply).splitlines():
        line = raw_line.strip()
        var = _FINAL_VAR_LINE.match(line)
        if var:
            return ("var", var.group(1))
        final = _FINAL_LINE.match(line)
        if final:
            return ("value", _strip_quotes(final.group(1).strip()))
    return None


def _strip_quotes(text: str) -> str:
    for quote in ('"""', "'''", '"', "'"):
        if len(text) >= 2 * len(quote) and text.startswith(quote) and text.endswith(quote):
            return text[len(quote) : -len(quote)]
    return text


def truncate_output(text: str, limit: int) -> str:
    """Keep the head and the tail; say how much was cut."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n... [{cut} characters truncated] ...\n{text[-tail:]}"
