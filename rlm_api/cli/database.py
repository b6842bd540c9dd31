"""`rlm db upgrade`: bring the database to the newest schema (what `flask db upgrade` does);
`rlm db prune`: delete what is older than the retention period (rlm_shared/retention.py)."""

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


@db.command("prune")
@click.option(
    "--older-than",
    "days",
    type=click.FloatRange(min=0),
    default=None,
    help="Delete what is older than this many days (default: RETENTION_DAYS).",
)
def prune(days: float | None) -> None:
    """Delete finished executions (with their traces and memory snapshots), memory snapshots,
    and contexts no execution or session uses, older than DAYS. A queued or running execution
    and its rows are never touched; sessions are kept.

    \b
    Examples:
      rlm db prune --older-than 30
      RETENTION_DAYS=90 rlm db prune
    """
    from rlm_api.cli.local_app import embedded_database_url, open_app
    from rlm_api.database import db as flask_db
    from rlm_shared.config import get_settings
    from rlm_shared.retention import prune as prune_database
    from rlm_worker.logging_setup import configure_logging

    configure_logging(fmt="text")
    days = days if days is not None else get_settings().retention_days
    if days is None:
        raise click.UsageError("say how old: --older-than DAYS, or set RETENTION_DAYS")
    app = open_app(embedded_database_url(), quiet=True)
    with app.app_context():
        pruned = prune_database(flask_db.engine, days)
    click.echo(f"{pruned.summary()} (older than {days:g} days)")
