"""The app the `rlm` command works on: `DATABASE_URL` if set, else SQLite in the user's data folder.

The database is migrated on first use, so `rlm run` works on a machine that has only Python.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from rlm_shared.config import Settings

APP_NAME = "rlm-engine"


def default_sqlite_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME)) / "rlm.db"


def embedded_database_url() -> str:
    """`DATABASE_URL` when the environment sets one, else the per-user SQLite file."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    path = default_sqlite_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def describe_database(url: str) -> str:
    """The URL with any password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def open_app(
    database_url: str, dispatch: str = "embedded", quiet: bool = False, settings: Settings | None = None
) -> Flask:
    """The Flask app over `database_url`, migrated to the newest schema (silently if `quiet`);
    `settings` default to the environment's."""
    from rlm_api import create_app

    app = create_app(
        {"RLM_DISPATCH": dispatch, "SQLALCHEMY_DATABASE_URI": database_url, "RLM_DB_COMMANDS": False},
        settings=settings,
    )
    with app.app_context():
        upgrade_database(quiet)
        if dispatch == "embedded":
            close_orphans()
    return app


def close_orphans() -> int:
    """Embedded runs whose process died (their lease lapsed) can never resume here: fail them."""
    import sqlalchemy as sa

    from rlm_api.database import db
    from rlm_shared.models import Execution
    from rlm_worker.engine.types import utcnow

    now = utcnow()
    closed = db.session.execute(
        sa.update(Execution)
        .where(Execution.status == "running", Execution.lease_expires_at < now)
        .values(status="failed", error="the process running it exited before it finished", finished_at=now)
    ).rowcount
    db.session.commit()
    return closed


REVISION_LINE = re.compile(r"""^(down_revision|revision)\s*=\s*['"]?([\w.-]+|None)['"]?\s*$""", re.M)


def migration_heads(directory: str) -> set[str]:
    """The newest revisions of the migrations in `directory`, read from their `revision` and
    `down_revision` lines (what alembic's ScriptDirectory computes, without importing alembic;
    tests/test_migrations.py checks they agree)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in Path(directory, "versions").glob("*.py"):
        found = dict(REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        if "revision" in found:
            revisions.add(found["revision"])
            if found.get("down_revision") not in (None, "None"):
                parents.add(found["down_revision"])
    return revisions - parents


def schema_is_current() -> bool:
    import sqlalchemy as sa

    from rlm_api import MIGRATIONS_DIR
    from rlm_api.database import db

    with db.engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return False
        current = {row[0] for row in conn.execute(sa.text("SELECT version_num FROM alembic_version"))}
    return current == migration_heads(MIGRATIONS_DIR)


def upgrade_database(quiet: bool = False) -> bool:
    """`flask db upgrade`, in this process, when the schema is behind. True if it migrated."""
    if schema_is_current():
        return False
    import flask_migrate
    from flask import current_app

    from rlm_api import MIGRATIONS_DIR, init_migrations

    if "migrate" not in current_app.extensions:
        init_migrations(current_app)

    with _logging_kept():
        if quiet:  # Alembic's INFO lines would land in the middle of `rlm run`'s progress
            logging.disable(logging.INFO)
        try:
            flask_migrate.upgrade(directory=MIGRATIONS_DIR)
        finally:
            logging.disable(logging.NOTSET)
    return True


@contextmanager
def _logging_kept() -> Iterator[None]:
    """Alembic's env.py calls `fileConfig`, which replaces the root handlers and silences every
    logger created before it; put the process's logging back as it was afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loggers = [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    disabled = {lg.name: lg.disabled for lg in loggers}
    try:
        yield
    finally:
        for old in list(root.handlers):
            root.removeHandler(old)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for lg in logging.Logger.manager.loggerDict.values():
            if isinstance(lg, logging.Logger):
                lg.disabled = disabled.get(lg.name, False)
