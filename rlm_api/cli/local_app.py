"""The app the `rlm` command works on: `DATABASE_URL` if set, else SQLite in the user's data folder.

The database is migrated on first use, so `rlm run` works on a machine that has only Python.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from rlm_worker.config import Settings

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

    app = create_app({"RLM_DISPATCH": dispatch, "SQLALCHEMY_DATABASE_URI": database_url}, settings=settings)
    with app.app_context():
        upgrade_database(quiet)
        if dispatch == "embedded":
            close_orphans()
    return app


def close_orphans() -> int:
    """Embedded runs whose process died (their lease lapsed) can never resume here: fail them."""
    import sqlalchemy as sa

    from rlm_api.models import Execution, db
    from rlm_worker.engine.types import utcnow

    now = utcnow()
    closed = db.session.execute(
        sa.update(Execution)
        .where(Execution.status == "running", Execution.lease_expires_at < now)
        .values(status="failed", error="the process running it exited before it finished", finished_at=now)
    ).rowcount
    db.session.commit()
    return closed


def schema_is_current() -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from rlm_api import MIGRATIONS_DIR
    from rlm_api.models import db

    heads = set(ScriptDirectory(MIGRATIONS_DIR).get_heads())
    with db.engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads()) == heads


def upgrade_database(quiet: bool = False) -> bool:
    """`flask db upgrade`, in this process, when the schema is behind. True if it migrated."""
    if schema_is_current():
        return False
    import flask_migrate

    from rlm_api import MIGRATIONS_DIR

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
