"""A large context costs the root worker about one copy: loading it leaves no copy in a pooled
database connection, and starting a REPL with it encodes it slice by slice, never as a whole.

Real Postgres and real sandbox processes; memory is read from /proc (Linux only).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from rlm_worker.sandbox import SandboxConfig, SubprocessSandbox
from tests.support.services import migrated_database

MB = 1024 * 1024
SLICE = 1 << 20  # rlm_worker.sandbox.process._SLICE_CHARS

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")


@pytest.fixture(scope="module")
def app():
    from rlm_api import create_app
    from rlm_shared.config import Settings

    with migrated_database("rlm_ctxmem") as url:
        yield create_app(settings=Settings(database_url=url))


def stored(app, value) -> str:
    from rlm_api.database import db
    from rlm_shared.contexts import store_context

    with app.app_context():
        context_id = store_context(value).id
        db.session.commit()
        db.session.remove()
    return context_id


#: Run in a fresh process: in the test process, a heap fragmented by earlier tests may keep freed
#: buffers mapped, and RSS would then measure the allocator's history instead of this code.
_LOAD_AND_MEASURE = """
import gc, json, sys
from pathlib import Path
from rlm_api import create_app
from rlm_shared.contexts import load_context
from rlm_api.database import db
from rlm_shared.config import Settings

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

app = create_app(settings=Settings(database_url=sys.argv[1]))
with app.app_context():
    load_context(sys.argv[3])  # the pool's connection and the imports exist already
    gc.collect()
    before = rss()
    value = load_context(sys.argv[2])
    db.session.remove()
    gc.collect()
    grown = rss() - before
print(json.dumps({"grown": grown, "ok": value == "0123456789" * 1_000_000}))
"""


def test_loading_a_large_context_keeps_only_the_value(app):
    size = 10_000_000
    big, small = stored(app, "0123456789" * (size // 10)), stored(app, "small")
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    out = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_MEASURE, url, big, small],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["ok"]
    # The str itself is 10 MB; a pooled connection keeping libpq's receive buffer added 2 more.
    assert report["grown"] < 1.5 * size, f"RSS grew by {report['grown'] / MB:.1f} MB"


def test_list_contexts_and_small_str_contexts_load_exactly(app):
    from rlm_shared.contexts import load_context

    items = ["é" * 3, {"k": [1, None]}, "😀"]
    with app.app_context():
        assert load_context(stored(app, items)) == items
        assert load_context(stored(app, "tiny ✓")) == "tiny ✓"
        with pytest.raises(LookupError):
            load_context("0" * 32)


def test_the_sandbox_never_holds_an_encoded_copy_of_the_context():
    context = "abcdefghij" * 1_000_000
    tracemalloc.start()
    try:
        box = SubprocessSandbox(context, {}, {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    try:
        assert peak < 4 * MB, f"peak {peak / MB:.1f} MB of Python allocations"
        result = box.execute("print(len(context), context[-3:])", lambda fn, args: None)
        assert result.stdout == "10000000 hij\n"
    finally:
        box.close()


def test_multibyte_characters_and_surrogates_across_slices_arrive_exactly():
    # Characters of 1 to 4 UTF-8 bytes and a lone surrogate on both sides of every slice edge.
    edge = "aé€😀\udc80"
    context = ("x" * (SLICE - 3) + edge) * 2 + "tail"
    expected = [ord(c) for c in context[SLICE - 5 : SLICE + 5]] + [ord(c) for c in context[-12:]]
    box = SubprocessSandbox(context, {}, {}, SandboxConfig(cell_timeout_seconds=2))
    window = f"context[{SLICE - 5}:{SLICE + 5}]"
    check = f"print(len(context), [ord(c) for c in {window}] + [ord(c) for c in context[-12:]])"
    try:
        assert box.execute(check, lambda fn, args: None).stdout == f"{len(context)} {expected}\n"
        killed = box.execute("while True:\n    pass", lambda fn, args: None)
        assert "the REPL was restarted" in (killed.error or "")
        # The restarted process is sent the context again, from the same str.
        assert box.execute(check, lambda fn, args: None).stdout == f"{len(context)} {expected}\n"
    finally:
        box.close()
