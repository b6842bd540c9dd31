"""`flask db upgrade` builds the schema on an empty Postgres and SQLite, and matches the models."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.services import ROOT, create_database


def flask_db(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "rlm_api", "db", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_upgrade_on_an_empty_database_then_models_match(backend, tmp_path):
    if backend == "postgresql":
        url, drop = create_database("rlm_migrate")
    else:
        url, drop = f"sqlite:///{tmp_path / 'rlm.db'}", (lambda: None)
    try:
        upgrade = flask_db(url, "upgrade")
        assert upgrade.returncode == 0, upgrade.stderr
        check = flask_db(url, "check")
        assert check.returncode == 0, check.stdout + check.stderr
        assert "No new upgrade operations detected" in check.stdout + check.stderr
        downgrade = flask_db(url, "downgrade", "base")
        assert downgrade.returncode == 0, downgrade.stderr
    finally:
        drop()


def _compression(url: str) -> dict[str, str]:
    """pg_attribute.attcompression of the large text columns: 'l' lz4, 'p' pglz, '' the default."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        rows = conn.execute(
            "SELECT c.relname || '.' || a.attname, a.attcompression FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid"
            " WHERE c.relname IN ('contexts', 'trace_nodes') AND a.atttypid = 'text'::regtype"
        ).fetchall()
    return {name: str(method or "") for name, method in rows}


def test_large_text_columns_are_compressed_with_lz4_on_postgres():
    """pglz cost ~0.13 s of database CPU per 10 M-character context; lz4 about a third (0002)."""
    url, drop = create_database("rlm_migrate")
    try:
        assert flask_db(url, "upgrade").returncode == 0
        after = _compression(url)
        assert {after[c] for c in ("contexts.content", "trace_nodes.prompt", "trace_nodes.stdout")} == {"l"}
        assert flask_db(url, "downgrade", "0001").returncode == 0
        assert set(_compression(url).values()) == {""}
    finally:
        drop()


def test_the_heads_rlm_run_reads_without_alembic_are_alembics():
    from alembic.script import ScriptDirectory

    from rlm_api import MIGRATIONS_DIR
    from rlm_api.cli.local_app import migration_heads

    assert migration_heads(MIGRATIONS_DIR) == set(ScriptDirectory(MIGRATIONS_DIR).get_heads())
    assert migration_heads(MIGRATIONS_DIR) == {"0008_memory_contents"}


#: Runs the migrations with plain Alembic, then reports whether anything imported Flask.
PLAIN_ALEMBIC = """
import sys
from alembic import command
from alembic.config import Config
config = Config("migrations/alembic.ini")
command.upgrade(config, "head")
command.check(config)  # raises if the models and the migrated schema differ
print(sorted(m for m in sys.modules if m.split(".")[0] in ("flask", "flask_sqlalchemy", "flask_migrate", "rlm_api")))
"""


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_plain_alembic_migrates_with_the_shared_models_and_no_flask(backend, tmp_path):
    """The models are plain SQLAlchemy classes: `alembic -c migrations/alembic.ini` needs no app."""
    if backend == "postgresql":
        url, drop = create_database("rlm_migrate")
    else:
        url, drop = f"sqlite:///{tmp_path / 'rlm.db'}", (lambda: None)
    try:
        env = {**os.environ, "DATABASE_URL": url}
        done = subprocess.run(
            [sys.executable, "-c", PLAIN_ALEMBIC], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "[]"
        assert "0008_memory_contents" in flask_db(url, "current").stdout  # Flask-Migrate sees it too
    finally:
        drop()
