"""Pure engine pieces: reply parsing, truncation, memory blocks, tree coordinates."""

from __future__ import annotations

import pytest

from rlm_worker.engine.memory import MemoryBlocks, MemoryError_
from rlm_worker.engine.parsing import ProseFinal, extract_code_cells, find_bare_final, truncate_output
from rlm_worker.engine.tree import TreeCursor


def test_extracts_repl_and_python_fences_in_order_and_ignores_others():
    reply = "```repl\na = 1\n```\ntext\n```python\nb = 2\n```\n```bash\nrm -rf /\n```\n```repl\n\n```"
    assert extract_code_cells(reply) == ["a = 1\n", "b = 2\n"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("FINAL(42)", ProseFinal("text", "42")),
        ("Done.\n  FINAL('x y')  ", ProseFinal("text", "x y")),
        ('FINAL("max")', ProseFinal("text", "max")),
        ("FINAL(\"llm_query('x')\")", ProseFinal("text", "llm_query('x')")),
        ("FINAL(llm_query('x'))", ProseFinal("text", "llm_query('x')")),
        ("FINAL(context.upper())", ProseFinal("text", "context.upper()")),
        ("FINAL(total)", ProseFinal("name", "total")),
        ("FINAL(The answer is blue)", ProseFinal("text", "The answer is blue")),
        ("FINAL(f(a), (b))", ProseFinal("text", "f(a), (b)")),
        ("FINAL(42)\nBecause of the table (see above)", ProseFinal("text", "42")),
        ("FINAL(This is a\nmultiline answer)", ProseFinal("text", "This is a\nmultiline answer")),
        ('FINAL_VAR("result")', ProseFinal("var", "result")),
        ("FINAL_VAR(result)", ProseFinal("var", "result")),
        ("FINAL_VAR(result)\nFINAL(other)", ProseFinal("var", "result")),
        ("I will call FINAL(x) later", None),
        ("```repl\nFINAL(1)\n```", None),
    ],
)
def test_bare_final(reply, expected):
    assert find_bare_final(reply) == expected


def test_truncation_keeps_head_and_tail_and_says_how_much():
    text = "H" * 1000 + "M" * 5000 + "T" * 1000
    out = truncate_output(text, 900)
    assert out.startswith("H" * 600) and out.endswith("T" * 300)
    assert "[6100 characters truncated]" in out
    assert truncate_output("short", 900) == "short"


def test_memory_blocks_edit_and_limits():
    memory = MemoryBlocks({"persona": "p"}, limit=20)
    memory.append("learnings", "a")
    memory.append("learnings", "b")
    assert memory.read("learnings") == "a\nb"
    memory.replace("learnings", "b", "c")
    assert memory.snapshot() == {"learnings": "a\nc", "persona": "p"}
    with pytest.raises(MemoryError_, match="limit is 20"):
        memory.set("persona", "x" * 21)
    with pytest.raises(MemoryError_, match="not found"):
        memory.replace("learnings", "zzz", "y")
    with pytest.raises(MemoryError_, match="no memory block"):
        memory.read("missing")


def test_merge_learnings_adds_only_new_lines():
    parent = MemoryBlocks({"learnings": "one"})
    before = parent.snapshot()
    parent.merge_learnings({"learnings": "one\ntwo"}, before)
    parent.merge_learnings({"learnings": "one\ntwo\nthree"}, before)
    assert parent.read("learnings") == "one\ntwo\nthree"


def test_tree_paths_sort_in_display_order_and_ids_are_stable():
    root = TreeCursor("e1", None).child("root", 0)
    cursor = TreeCursor("e1", root)
    nodes = [cursor.child("iteration", 0) for _ in range(12)]
    assert [n.path for n in nodes] == sorted(n.path for n in nodes)
    again = TreeCursor("e1", root).child("iteration", 0)
    assert again.id == nodes[0].id and again.path == "000000.000000"
    assert TreeCursor("e2", None).child("root", 0).id != root.id
