"""What the scripted model answers in these tests: small RLM programs over the sample ship's log."""

from __future__ import annotations

import re
from typing import Any

from tests.support.scripted_model import turn_index, user_text

ARRIVAL = re.compile(r"^\w+ (\d+ \w+ 1887)\..*?Came to anchor in (.+?) at \d", re.M)
DEATH = re.compile(r"^\w+ (\d+ \w+ 1887)\..*?Seaman ([A-Z]\w+ [A-Z]\w+) fell .*? was killed", re.M)

# Split on entries, so no entry is cut in two; ask each group of 40 entries.
ASK_EVERY_PART = """```repl
entries = context.split("\\n\\n")
parts = ["\\n\\n".join(entries[i:i + 40]) for i in range(0, len(entries), 40)]
print(len(parts), "parts")
replies = llm_query_batched([QUESTION + "\\nReply one per line, or NONE.\\n\\n" + p for p in parts])
found = [line for r in replies for line in r.splitlines() if line.strip() and line.strip() != "NONE"]
FINAL("\\n".join(found) if found else "NONE")
```"""


def is_root(request: dict[str, Any]) -> bool:
    system = next((m.get("content", "") for m in request["messages"] if m["role"] == "system"), "")
    return "Recursive Language Model" in str(system)


def ship_log_responder(request: dict[str, Any]) -> str:
    """Root: ask every part of the log; sub-calls: read the part and report what it states."""
    if is_root(request):
        asked = " ".join(str(m["content"]) for m in request["messages"] if m["role"] == "user")
        question = (
            "Who died, and when?"
            if ("died" in asked or "killed" in asked)
            else "Where did the ship come to anchor, and when?"
        )
        return ASK_EVERY_PART.replace("QUESTION", repr(question))
    prompt = user_text(request)
    if prompt.startswith("Who died"):
        found = [f"{name} died on {day}" for day, name in DEATH.findall(prompt)]
    else:
        found = [f"{place.rstrip(',')}: {day}" for day, place in ARRIVAL.findall(prompt)]
    return "\n".join(found) or "NONE"


def program_responder(*programs: str, sub: str = "leaf") -> Any:
    """Root turn n gets programs[n] (fenced); sub-calls get `sub`."""

    def respond(request: dict[str, Any]) -> str:
        if not is_root(request):
            return sub
        return "```repl\n" + programs[min(turn_index(request), len(programs) - 1)] + "\n```"

    return respond
