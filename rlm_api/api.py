"""The JSON API blueprint; its views live in `rlm_api/routes/`, one module per area."""

from __future__ import annotations

from rlm_api.routes import bp

__all__ = ["bp"]
