"""The scripted model and root program the eval tests run the tiny suite with, and the scores
they must give (the model's answers are known, so the scores are exact)."""

from __future__ import annotations

import re

from tests.support.scripted_model import user_text

PLANTED = re.compile(r"secret access code for [\w ]+? is ([A-Z]{2}-\d{4})")

#: Overlapping chunks, so a planted sentence is whole in at least one; each asked once.
CHUNK_PROGRAM = """\
chunks = [context[i:i + 3200] for i in range(0, len(context), 3000)]
replies = llm_query_batched(["Question: " + QUESTION + "\\n\\n" + c for c in chunks])
found = sorted(set(code for r in replies if r != "NONE" for code in r.split(", ")))
FINAL(", ".join(found) if found else "NONE")
"""
CONFIG = "root program"
BASELINE = "base model alone: openai/scripted-sub"
#: The tiny suite at seed 0 (6,000 characters): the needle at depth 50 % (past the baseline's
#: 1,000-token window, ~1,800 characters), three needles at 25/50/75 % (only the first inside it);
#: aggregation and pairs (the scripted model knows nothing of topics or users).
EXPECTED = {
    (CONFIG, "needle"): 1.0,
    (CONFIG, "multi_needle"): 1.0,
    (CONFIG, "aggregation"): 0.0,
    (CONFIG, "pairs"): 0.0,
    (BASELINE, "needle"): 0.0,
    (BASELINE, "multi_needle"): 0.5,
    (BASELINE, "aggregation"): 0.0,
    (BASELINE, "pairs"): 0.0,
}


def code_finder(request: dict) -> str:
    """The scripted model: the access codes planted in the prompt, comma-separated, or NONE."""
    codes = PLANTED.findall(user_text(request))
    return ", ".join(codes) if codes else "NONE"


def scores(report: dict) -> dict[tuple[str, str], float]:
    return {(r["config"], r["task"]): r["accuracy"] for r in report["rows"]}
