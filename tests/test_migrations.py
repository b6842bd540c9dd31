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
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
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
