"""The JSON API under `/api`: one blueprint, a module per area (sessions, executions, service)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

from rlm_api.routes import evals, executions, service, sessions  # noqa: E402, F401  (they register views on bp)
