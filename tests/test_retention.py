"""What the database keeps (issue 30): memory snapshots stored once by content, and `rlm db prune`
deleting old finished executions, their traces and snapshots, and unused contexts, never a
running execution's rows. On a real Postgres database, through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from rlm_shared.database import normalize_database_url
from rlm_shared.models import Context, Execution, MemoryContent, MemorySnapshot, Session, TraceNode
from rlm_shared.trace_sink import SqlTraceSink
from tests.support.services import ROOT, migrated_database

OLD = datetime.now(UTC) - timedelta(days=40)


@pytest.fixture(scope="module")
def engine():
    with migrated_database("rlm_retention") as url:
        engine = sa.create_engine(normalize_database_url(url))
        yield engine
        engine.dispose()


def _context(conn, name: str, created=OLD) -> str:
    conn.execute(
        sa.insert(Context),
        {"id": name, "sha256": name.ljust(64, "0"), "kind": "str", "size_chars": 1, "content": "c", "created_at": created},
    )
    return name


def _execution(conn, ident: str, context: str, status: str, finished=OLD) -> str:
    conn.execute(
        sa.insert(Execution),
        {
            "id": ident, "context_id": context, "user_query": "q", "root_model": "m", "sub_model": "m",
            "options": {}, "status": status, "created_at": OLD,
            "finished_at": finished if status not in ("queued", "running") else None,
        },
    )
    conn.execute(
        sa.insert(TraceNode),
        {"id": f"{ident}-n", "execution_id": ident, "depth": 0, "seq": 0, "path": "0", "kind": "root",
         "status": "succeeded"},
    )
    return ident


def test_snapshots_repeating_the_same_blocks_store_them_once(engine):
    with engine.begin() as conn:
        _execution(conn, "dedupe", _context(conn, "ctx-dedupe", datetime.now(UTC)), "running")
    sink = SqlTraceSink(engine)
    blocks = {"learnings": "x" * 100_000, "notes": "the same every time"}
    for _ in range(40):  # forty children of one rlm_query_batched, memory unchanged
        sink.memory_snapshot("dedupe", "dedupe-n", blocks)
    sink.memory_snapshot("dedupe", "dedupe-n", {**blocks, "notes": "changed"})
    with engine.connect() as conn:
        snapshots = conn.execute(
            sa.select(MemorySnapshot.content_sha256, MemorySnapshot.blocks).where(MemorySnapshot.execution_id == "dedupe")
        ).all()
        stored = conn.scalar(
            sa.select(sa.func.count()).select_from(MemoryContent).where(
                MemoryContent.sha256.in_({row.content_sha256 for row in snapshots})
            )
        )
    assert len(snapshots) == 41 and all(row.blocks is None for row in snapshots)
    assert len({row.content_sha256 for row in snapshots}) == 2 and stored == 2


def test_prune_deletes_what_is_old_and_unused_never_a_running_execution(engine):
    now = datetime.now(UTC)
    with engine.begin() as conn:
        old_done = _execution(conn, "old-done", _context(conn, "ctx-old-done"), "succeeded")
        old_running = _execution(conn, "old-running", _context(conn, "ctx-running"), "running")
        recent = _execution(conn, "recent", _context(conn, "ctx-recent"), "failed", finished=now)
        _context(conn, "ctx-unused")
        _context(conn, "ctx-unused-new", now)
        conn.execute(
            sa.insert(Session),
            {"id": "sess", "name": "kept", "context_id": _context(conn, "ctx-session"), "memory": {},
             "variables": {}, "created_at": OLD, "updated_at": OLD},
        )
    sink = SqlTraceSink(engine)
    for execution in (old_done, old_running, recent):
        sink.memory_snapshot(execution, f"{execution}-n", {"learnings": f"of {execution}"})
    with engine.begin() as conn:  # the snapshots were taken 40 days ago
        conn.execute(sa.update(MemorySnapshot).values(created_at=OLD))
        conn.execute(sa.update(MemoryContent).values(created_at=OLD))

    env = {**os.environ, "DATABASE_URL": str(engine.url.render_as_string(hide_password=False))}
    env.pop("RETENTION_DAYS", None)
    refused = subprocess.run(
        [sys.executable, "-m", "rlm_api.cli", "db", "prune"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "RETENTION_DAYS" in refused.stderr
    done = subprocess.run(
        [sys.executable, "-m", "rlm_api.cli", "db", "prune", "--older-than", "30"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "deleted 1 executions" in done.stdout, done.stdout

    with engine.connect() as conn:
        executions = set(conn.scalars(sa.select(Execution.id)))
        nodes = set(conn.scalars(sa.select(TraceNode.execution_id)))
        snapshots = set(conn.scalars(sa.select(MemorySnapshot.execution_id)))
        contexts = set(conn.scalars(sa.select(Context.id)))
        contents = conn.scalar(sa.select(sa.func.count()).select_from(MemoryContent))
    assert "old-done" not in executions and {"old-running", "recent"} <= executions
    assert "old-done" not in nodes and {"old-running", "recent"} <= nodes
    assert snapshots >= {"old-running"} and not snapshots & {"old-done", "recent"}  # a running one's kept
    assert not contexts & {"ctx-old-done", "ctx-unused"}
    assert {"ctx-running", "ctx-recent", "ctx-session", "ctx-unused-new"} <= contexts
    with engine.connect() as conn:  # what the kept snapshots name is kept
        named = set(conn.scalars(sa.select(MemorySnapshot.content_sha256)))
        assert named <= set(conn.scalars(sa.select(MemoryContent.sha256))) and contents >= len(named)
