"""The database every process uses: one way to build its engine, and the session the shared code
(contexts, the runner) reads and writes through, bound by the process that runs it.

The web side binds Flask-SQLAlchemy's engine and app-context session (`rlm_api.database`); a
Celery worker binds an engine and a scoped session of its own (`rlm_worker.celery_app`), disposes
the engine after fork and removes the session after each task, as Superset does. Either way the
models are the same plain declarative classes (`rlm_shared.models`), and nothing here imports Flask.
"""

from __future__ import annotations

from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import scoped_session, sessionmaker


def normalize_database_url(url: str) -> str:
    """Accept the URLs platforms hand out (`postgres://`, `postgresql://`) and use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


#: What every engine of ours is built with: a connection broken by a database restart is noticed
#: before it is used.
ENGINE_OPTIONS: dict[str, Any] = {"pool_pre_ping": True}


def engine_options(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """`options` (default ENGINE_OPTIONS) with what SQLite needs: threads share its connections,
    and a writer waits 30 s for another rather than failing."""
    options = dict(ENGINE_OPTIONS if options is None else options)
    if url.startswith("sqlite"):
        options.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
    return options


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:  # noqa: ANN001
    """WAL lets the dashboard read while worker threads write; busy_timeout queues writers."""
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database(Protocol):
    """An engine and a session over it (SQLAlchemy's `scoped_session` interface)."""

    @property
    def engine(self) -> Engine: ...

    @property
    def session(self) -> Any: ...


class OwnDatabase:
    """An engine built from a URL and a thread-scoped session over it: a worker process's."""

    def __init__(self, url: str) -> None:
        url = normalize_database_url(url)
        self.engine = sa.create_engine(url, **engine_options(url))
        self.session = scoped_session(sessionmaker(bind=self.engine))


class BoundDatabase:
    """`database.engine` and `database.session`: those of the Database this process bound.

    Shared code is called by the web app and by the worker alike, so it asks here rather than
    naming either; each process binds its own once, when it starts (`bind`).
    """

    def __init__(self) -> None:
        self._bound: Database | None = None

    def bind(self, database: Database) -> None:
        self._bound = database

    @property
    def bound(self) -> Database:
        if self._bound is None:
            raise RuntimeError(
                "no database is bound in this process: the web app binds Flask-SQLAlchemy's "
                "(rlm_api.database.init_database), a Celery worker its own (rlm_worker.celery_app)"
            )
        return self._bound

    @property
    def engine(self) -> Engine:
        return self.bound.engine

    @property
    def session(self) -> Any:
        return self.bound.session


database = BoundDatabase()
