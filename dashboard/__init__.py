"""The dashboard: server-rendered pages over the same database as the API."""

from dashboard import evals  # noqa: E402, F401, I001  (registers the eval pages on bp)
from dashboard.views import bp

__all__ = ["bp"]
