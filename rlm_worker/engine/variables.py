"""Session variables are strict JSON; a value that is not is dropped and named, never stored.

Why: variables live in a JSON column, go out through the API and come back into the next REPL. A
value that is not strict JSON (`float("inf")` dumps as `Infinity`) breaks all three, and one such
value would stop every later execution of the session from starting its REPL. A session stored by
an older version may already hold one: it is dropped when the session is loaded, and reported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def is_strict_json(value: Any) -> bool:
    """Whether `value` dumps as standard JSON (finite numbers, str keys or keys JSON turns into str)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def strict_json_variables(variables: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the variables that are strict JSON, the names of the others)."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in variables.items():
        if type(name) is str and is_strict_json(value):
            kept[name] = value
        else:
            dropped.append(str(name))
    return kept, dropped
