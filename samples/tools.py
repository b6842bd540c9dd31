"""An example of custom tools: Python functions the worker offers to the REPL by name.

Register them with `RLM_TOOLS=samples.tools:checksum,samples.tools:iso_week` in the workers'
environment (or as `rlm_engine.tools` entry points of an installed package; docs/tools.md). The
model's code then calls `checksum(text)` like any REPL function; the call runs here, in the
worker, where `hashlib` is importable (the sandbox offers no such module), and the answer comes
back as JSON data. The docstring and the signature are what the root model is shown.
"""

from __future__ import annotations

import datetime
import hashlib


def checksum(text: str, algorithm: str = "sha256") -> str:
    """The hex digest of `text` (UTF-8) with `algorithm` (sha256, sha1, md5, blake2b, ...), e.g.
    to tell whether two passages are byte-for-byte the same or to match a published checksum."""
    if algorithm not in hashlib.algorithms_guaranteed:
        raise ValueError(
            f"unknown algorithm {algorithm!r}; use one of {sorted(hashlib.algorithms_guaranteed)}"
        )
    return hashlib.new(algorithm, text.encode("utf-8")).hexdigest()


def iso_week(date: str) -> list[int]:
    """The ISO year, week number and weekday (1 = Monday) of a `YYYY-MM-DD` date."""
    year, week, weekday = datetime.date.fromisoformat(date).isocalendar()
    return [year, week, weekday]
