"""Reading the model's reply: fenced code cells and a FINAL(...) written outside a fence.

A FINAL(...) in prose is data, never code: the text between its parentheses is only ever read as
a quoted string (its text), a bare name (looked up as a variable by the loop), or the text as
written. Nothing in it is evaluated, so `FINAL("max")`, `FINAL(llm_query('x'))` or
`FINAL(context.upper())` can neither call a function nor reach a builtin.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_FENCE = re.compile(r"```(?:repl|python|py)[ \t]*\n(.*?)```", re.DOTALL)
#: FINAL(...) on one line; its argument may hold parentheses (`FINAL(f(a), (b))` is "f(a), (b)").
_FINAL_LINE = re.compile(r"^\s*FINAL\((.*)\)\s*$")
#: A FINAL( line whose ")" comes on a later line: up to the last ")" that ends a line.
_FINAL_SPANNING = re.compile(r"^[ \t]*FINAL\((.*)\)[ \t]*$", re.DOTALL | re.MULTILINE)
_FINAL_VAR_LINE = re.compile(r"^\s*FINAL_VAR\(\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?\s*\)\s*$")


def extract_code_cells(reply: str) -> list[str]:
    """Every ```repl / ```python block, in order."""
    return [m.group(1) for m in _FENCE.finditer(reply) if m.group(1).strip()]


def text_outside_fences(reply: str) -> str:
    return re.sub(r"```.*?```", "", reply, flags=re.DOTALL)


@dataclass(frozen=True)
class ProseFinal:
    """A FINAL written outside a code block. `kind`: "text" (`value` is the answer as it stands),
    "name" (a bare identifier: the value of that REPL variable if it exists, else the name as text)
    or "var" (FINAL_VAR(name): the value of that variable; no such variable is an error)."""

    kind: str
    value: str


def find_bare_final(reply: str) -> ProseFinal | None:
    """The first FINAL_VAR(...) line outside any fence, else the first FINAL(...), else None."""
    prose = text_outside_fences(reply)
    lines = prose.splitlines()
    for line in lines:
        var = _FINAL_VAR_LINE.match(line.strip())
        if var:
            return ProseFinal("var", var.group(1))
    for line in lines:
        final = _FINAL_LINE.match(line)
        if final:
            return read_final_argument(final.group(1).strip())
    spanning = _FINAL_SPANNING.search(prose)
    return read_final_argument(spanning.group(1).strip()) if spanning else None


def read_final_argument(text: str) -> ProseFinal:
    """What a FINAL(...) in prose means, read without evaluating anything: one string literal is
    its text, one bare name is a variable to look up, anything else is the text as written."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ProseFinal("text", _strip_quotes(text))
    body = tree.body
    if isinstance(body, ast.Constant) and isinstance(body.value, str):
        return ProseFinal("text", body.value)
    if isinstance(body, ast.Name):
        return ProseFinal("name", body.id)
    return ProseFinal("text", text)


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
