"""The web side's database: Flask-SQLAlchemy over the shared models' `Base`.

`db.session` is scoped to the app context, as Flask-SQLAlchemy does it; `init_database` also binds
it as the shared layer's database (`rlm_shared.database`), so the shared code the API, the
dashboard and embedded mode call (contexts, the runner) uses this engine and this session.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.engine import Engine

from rlm_shared.database import database, engine_options
from rlm_shared.models import Base

db = SQLAlchemy(model_class=Base)


class FlaskDatabase:
    """The shared layer's Database on the web side: the current app's engine and session."""

    @property
    def engine(self) -> Engine:
        return db.engine

    @property
    def session(self) -> Any:
        return db.session


def init_database(app: Flask) -> None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(uri, app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}))
    db.init_app(app)
    database.bind(FlaskDatabase())
