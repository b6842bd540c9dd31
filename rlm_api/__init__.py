"""RLM Engine's Flask application: the JSON API and the dashboard, over one database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask

from rlm_shared.config import Settings, get_settings

if TYPE_CHECKING:
    from celery import Celery

MIGRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "migrations")


def create_app(overrides: dict[str, Any] | None = None, settings: Settings | None = None) -> Flask:
    """Build the app: settings from the environment, then `overrides` (tests use these)."""
    from rlm_shared.database import normalize_database_url

    settings = settings or get_settings()
    app = Flask(__name__)
    app.config.from_mapping(
        RLM_SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=normalize_database_url(settings.database_url),
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        MAX_CONTENT_LENGTH=settings.max_context_size * 4 + 1_000_000,
        CELERY=celery_config(settings),
        JSON_SORT_KEYS=False,
        # Flask's defaults already hold this key (None), so it must be set, not setdefault-ed.
        SESSION_COOKIE_SAMESITE="Lax",
    )
    if overrides:
        app.config.update(overrides)
        if "SQLALCHEMY_DATABASE_URI" in overrides:
            app.config["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(
                overrides["SQLALCHEMY_DATABASE_URI"]
            )

    from rlm_api.database import init_database

    init_database(app)
    if app.config.get("RLM_DB_COMMANDS", True):
        init_migrations(app)

    celery_init_app(app)

    from dashboard import bp as dashboard_bp
    from rlm_api.api import bp as api_bp
    from rlm_api.errors import register_error_handlers

    app.register_blueprint(api_bp)
    app.register_blueprint(dashboard_bp)
    from rlm_api.routes.openai_compat import bp as openai_compat_bp

    app.register_blueprint(openai_compat_bp)
    from rlm_api.mcp.http import bp as mcp_bp

    app.register_blueprint(mcp_bp)
    register_error_handlers(app)
    from rlm_api.metrics import init_metrics

    init_metrics(app, settings)
    from rlm_api.auth import init_auth

    init_auth(app)
    from rlm_api.streams import init_streams

    init_streams(app, settings)
    from rlm_shared.tracing import setup as setup_tracing

    setup_tracing(app)  # OpenTelemetry, when OTEL_TRACES_EXPORTER asks for it (docs/observability.md)
    return app


def init_migrations(app: Flask) -> None:
    """Flask-Migrate (`flask db upgrade`, ...) on `app`. `rlm run` opens the app without it and
    calls this only when the schema is behind: importing alembic costs ~1.3 s of its start-up."""
    from flask_migrate import Migrate

    from rlm_api.database import db

    Migrate(app, db, directory=MIGRATIONS_DIR, render_as_batch=True)


def celery_config(settings: Settings) -> dict[str, Any]:
    from rlm_shared.celery_config import celery_settings

    return celery_settings(settings)


def celery_init_app(app: Flask) -> Celery:
    """The app's Celery, which sends executions to the workers (Flask's Celery pattern: a task
    run here runs inside the app context). The workers build theirs in rlm_worker.celery_app."""
    from celery import Celery, Task

    from rlm_shared.celery_config import survive_broker_restarts

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    survive_broker_restarts()
    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(app.config["CELERY"])
    celery.set_default()
    app.extensions["celery"] = celery
    return celery
