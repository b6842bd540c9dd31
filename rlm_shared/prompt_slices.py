"""Sub-call prompts that quote the stored context travel as references, not copies.

A fan-out's prompts are mostly slices of the context (`"question\\n\\n" + context[i:j]`), and the
context is already in Postgres. Sent whole, every prompt crossed Redis twice (the message, and
kombu's unacknowledged copy of it): 2.1× the prompt's bytes a sub-call, ~200 MB of Redis traffic
for a 50 M-character fan-out (bench/data_path.py). So the root sends the part that is a slice as
`(context id, start, length)` with the text around it, and each llm worker reads the context once
(from Postgres, kept for the next messages of the same context) and rebuilds the prompt exactly.

Finding the slice costs the root one `str.find` of a 64-character probe, from where the last slice
ended (fan-outs go through the context in order, so this is short), and a few block comparisons
to grow the match both ways; a slice is used only where the text is verified equal, so a
reference always rebuilds the very prompt the program made. After `MAX_MISSES` prompts that quote
nothing in a row, the finder stops looking (a program whose prompts are not slices pays almost nothing).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

#: Prompts shorter than this travel whole: a reference (~60 bytes and the text around the slice)
#: saves little below it.
MIN_SLICE_CHARS = 256
PROBE_CHARS = 64
MAX_MISSES = 16
#: The key of a call's reference in its message (the call's `prompt` is then None).
REF_KEY = "prompt_ref"


def _forward(a: str, i: int, b: str, j: int) -> int:
    """The largest k with a[i:i+k] == b[j:j+k], by block comparisons that double and halve."""
    limit = min(len(a) - i, len(b) - j)
    k, step = 0, 256
    while k < limit:
        n = min(step, limit - k)
        if a[i + k : i + k + n] == b[j + k : j + k + n]:
            k += n
            step *= 2
        elif n == 1:
            break
        else:
            step = max(1, n // 2)
    return k


def _backward(a: str, i: int, b: str, j: int) -> int:
    """The largest k with a[i-k:i] == b[j-k:j]."""
    limit = min(i, j)
    k, step = 0, 256
    while k < limit:
        n = min(step, limit - k)
        if a[i - k - n : i - k] == b[j - k - n : j - k]:
            k += n
            step *= 2
        elif n == 1:
            break
        else:
            step = max(1, n // 2)
    return k


class SliceFinder:
    """Splits prompts into (head, start, length, tail) around the longest run found in `context`."""

    def __init__(self, context_id: str, context: str) -> None:
        self.context_id, self.context = context_id, context
        self._cursor = 0  # where the last slice ended: the next one usually starts there
        self._misses = 0

    def split(self, prompt: str) -> tuple[str, int, int, str] | None:
        if len(prompt) < MIN_SLICE_CHARS or self._misses >= MAX_MISSES:
            return None
        middle = len(prompt) // 2
        probe = prompt[middle : middle + PROBE_CHARS]
        cursor = self._cursor
        at = self.context.find(probe, cursor)
        if at < 0 and cursor:
            at = self.context.find(probe, 0, cursor + len(probe))
        if at < 0:
            self._misses += 1
            return None
        right = _forward(prompt, middle, self.context, at)
        left = _backward(prompt, middle, self.context, at)
        if left + right < MIN_SLICE_CHARS:
            self._misses += 1
            return None
        self._cursor, self._misses = at + right, 0
        return prompt[: middle - left], at - left, left + right, prompt[middle + right :]

    def wire(self, call: dict[str, Any]) -> dict[str, Any]:
        """A call's message form: its prompt as a reference when it quotes the context."""
        parts = self.split(call["prompt"])
        if parts is None:
            return call
        head, start, length, tail = parts
        return {**call, "prompt": None, REF_KEY: [self.context_id, head, start, length, tail]}


class ContextTexts:
    """The contexts an llm worker rebuilds prompts from: each read once, the last few kept.

    One lock per load, so 32 threads meeting a new context read it once, not 32 times."""

    def __init__(self, load: Callable[[str], Any], keep: int = 2) -> None:
        self._load, self._keep = load, keep
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, context_id: str) -> str:
        with self._lock:
            text = self._texts.get(context_id)
            if text is None:
                value = self._load(context_id)
                if not isinstance(value, str):
                    raise TypeError(f"context {context_id} is not text: no prompt can be a slice of it")
                text = value
                self._texts[context_id] = text
                while len(self._texts) > self._keep:
                    self._texts.popitem(last=False)
            else:
                self._texts.move_to_end(context_id)
            return text

    def resolve(self, call: dict[str, Any]) -> dict[str, Any]:
        """The call with its whole prompt, whichever form it came in."""
        ref = call.get(REF_KEY)
        if ref is None:
            return call
        context_id, head, start, length, tail = ref
        text = self.get(context_id)
        rest = {k: v for k, v in call.items() if k != REF_KEY}
        return {**rest, "prompt": head + text[start : start + length] + tail}
