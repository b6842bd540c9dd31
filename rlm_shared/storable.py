"""Text Postgres refuses: the NUL character and lone UTF-16 surrogates.

Postgres stores neither in `text` nor in `jsonb` (a NUL ends a C string; a lone surrogate has no
UTF-8 form), and a single one fails the whole statement. So text is handled where it enters:
- from a client (API bodies, form posts, `/v1`, MCP), `first_unstorable` finds the field and the
  request is refused with a 4xx naming it;
- from a run (what the model's code prints, its answer, a prompt, a memory block, a session
  variable), `storable` replaces each such character with U+FFFD and says how many it replaced,
  so the trace can say so and the write succeeds.
"""

from __future__ import annotations

import re
from typing import Any

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"
NOTE = "[rlm: {count} character(s) Postgres cannot store (NUL, lone surrogates) were replaced by U+FFFD]"


def describe(text: str) -> str:
    """What is wrong with `text`, for an error message."""
    found = UNSTORABLE.search(text)
    if found and found.group() == "\x00":
        return "holds a NUL character (\\u0000), which cannot be stored"
    return "holds a lone surrogate (an unpaired \\ud800-\\udfff), which is not valid Unicode text"


def first_unstorable(value: Any, path: str = "") -> tuple[str, str] | None:
    """(dotted path, the string) of the first string or key in `value` that cannot be stored."""
    if isinstance(value, str):
        return (path or "(body)", value) if UNSTORABLE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and UNSTORABLE.search(key):
                return UNSTORABLE.sub(REPLACEMENT, where), key
            found = first_unstorable(item, where)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = first_unstorable(item, f"{path}.{index}" if path else str(index))
            if found:
                return found
    return None


def unstorable_field(value: Any) -> tuple[str, str] | None:
    """(field, message) for the first field of a request that cannot be stored, or None."""
    found = first_unstorable(value)
    if found is None:
        return None
    field, text = found
    return field, f"invalid {field}: it {describe(text)}"


def storable(value: Any) -> tuple[Any, int]:
    """`value` with every unstorable character (in strings and keys, at any depth) replaced by
    U+FFFD, and how many were replaced. Values without any come back as they are."""
    if isinstance(value, str):
        cleaned, count = UNSTORABLE.subn(REPLACEMENT, value)
        return cleaned, count
    if isinstance(value, dict):
        total, out = 0, {}
        for key, item in value.items():
            new_key, key_count = storable(key) if isinstance(key, str) else (key, 0)
            new_item, item_count = storable(item)
            out[new_key] = new_item
            total += key_count + item_count
        return (out, total) if total else (value, 0)
    if isinstance(value, list | tuple):
        items = [storable(item) for item in value]
        total = sum(count for _, count in items)
        return (type(value)(item for item, _ in items), total) if total else (value, 0)
    return value, 0
