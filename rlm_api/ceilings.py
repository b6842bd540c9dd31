"""Server-side ceilings on the guards a request may set (`CEILING_*` settings).

`ExecutionOptions` bounds each guard loosely (a million sub-calls, a day of wall clock) because
the engine and `rlm run` serve one trusted user too. A multi-tenant server needs its own,
tighter bounds: a request may lower any guard, and raise it only up to the operator's ceiling.
The operator's own defaults (`MAX_ITERATIONS`, `EXECUTION_TIMEOUT`, ...) are not checked here.
"""

from __future__ import annotations

from typing import Any

from rlm_shared.config import Settings

#: Every numeric guard of ExecutionOptions, and the setting that caps it.
CEILINGS = {
    "max_iterations": "ceiling_max_iterations",
    "max_recursion_depth": "ceiling_max_recursion_depth",
    "max_sub_calls": "ceiling_max_sub_calls",
    "max_total_tokens": "ceiling_max_total_tokens",
    "max_cost_usd": "ceiling_max_cost_usd",
    "timeout_seconds": "ceiling_timeout_seconds",
    "output_limit": "ceiling_output_limit",
    "cell_timeout_seconds": "ceiling_cell_timeout_seconds",
    "cell_cpu_seconds": "ceiling_cell_cpu_seconds",
    "chunk_size": "ceiling_chunk_size",
    "max_tool_calls": "ceiling_max_tool_calls",
    "max_ranking_seconds": "ceiling_max_ranking_seconds",
    "max_concurrent_subcalls": "max_concurrent_subcalls_ceiling",
}


def over_ceiling(settings: Settings, chosen: dict[str, Any]) -> tuple[str, str] | None:
    """(option, message) for the first option a request set above its ceiling, or None."""
    for option, setting in CEILINGS.items():
        value = chosen.get(option)
        ceiling = getattr(settings, setting)
        if value is not None and float(value) > ceiling:
            return option, f"at most {ceiling:,} on this server ({setting.upper()})"
    return None
