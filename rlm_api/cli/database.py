"""`rlm db upgrade`: bring the database to the newest schema (what `flask db upgrade` does)."""

from __future__ import annotations

import click


@click.group("db")
def db() -> None:
    """Manage the database schema (Flask-Migrate / Alembic migrations)."""


@db.command("upgrade")
def upgrade() -> None:
    """Migrate DATABASE_URL (else the embedded SQLite file) to the newest schema.

    Safe to run any number of times; the full stack runs it once before the web and the workers
    start (the `migrate` service in docker-compose.yml, `release` in the Procfile).

    \b
    Examples:
      rlm db upgrade
      DATABASE_URL=postgresql://rlm:secret@db.internal/rlm rlm db upgrade
    """
    from rlm_api.cli.local_app import describe_database, embedded_database_url, open_app
    from rlm_worker.logging_setup import configure_logging

    configure_logging(fmt="text")
    url = embedded_database_url()
    open_app(url)
    click.echo(f"database {describe_database(url)} is at the newest schema")
