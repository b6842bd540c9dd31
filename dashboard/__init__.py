"""The dashboard: server-rendered pages over the same database as the API."""

from dashboard.views import bp

__all__ = ["bp"]
