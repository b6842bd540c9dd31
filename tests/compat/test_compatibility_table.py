"""docs/compatibility.md and the suite cannot drift: every case marked as a deliberate difference
has a row in the table (case, the reference, ours, why), and every row a marked case."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARK = re.compile(r'mark\.difference\("([a-z0-9-]+)"\)')
ROW = re.compile(r"^\| `([a-z0-9-]+)` \|(.+)\|$", re.M)


def marked_cases() -> set[str]:
    return {case for path in Path(__file__).parent.glob("test_*.py") for case in MARK.findall(path.read_text())}


def table_rows() -> dict[str, list[str]]:
    text = (ROOT / "docs" / "compatibility.md").read_text(encoding="utf-8")
    section = text.split("## Deliberate differences", 1)[1].split("\n## ", 1)[0]
    return {case: [cell.strip() for cell in rest.split(" | ")] for case, rest in ROW.findall(section)}


def test_every_marked_difference_has_a_row_and_every_row_a_case():
    marked, rows = marked_cases(), table_rows()
    assert marked, "no case is marked"
    assert marked - set(rows) == set(), "marked in tests/compat but missing from docs/compatibility.md"
    assert set(rows) - marked == set(), "a row of docs/compatibility.md that no test marks"


def test_every_row_says_what_the_reference_does_what_we_do_and_why():
    for case, cells in table_rows().items():
        assert len(cells) == 3 and all(cells), f"row {case}: needs the reference, ours and why"
