"""Live progress of one execution on stderr: iteration, sub-calls done/total, tokens, cost.

A side thread reads the execution's figures every `interval` seconds from the one source the API,
SSE and dashboard read (`rlm_shared.live_totals`: the trace while it runs). Embedded mode writes a
batch's nodes when the batch is sent and each node again when its call returns, so the total is
the batch's size from the start and tokens and cost grow call by call. On a
terminal it draws a rich progress bar; elsewhere (a pipe, a log file, a test) it prints one plain
line each time something changed, so captured output stays readable.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import sqlalchemy as sa
from flask import Flask
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from rlm_api.database import db
from rlm_shared.live_totals import stored_totals, trace_totals
from rlm_shared.models import FINISHED_STATUSES, Execution
from rlm_shared.wording import plural


@dataclass(frozen=True)
class Snapshot:
    status: str
    iterations: int
    subcalls_done: int
    subcalls_total: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    #: Sub-calls stopped before they returned (a cancel, a timeout): not counted as done.
    subcalls_cancelled: int = 0
    llm_calls: int = 0

    @property
    def iteration(self) -> int:
        """The iteration under way while running (the row counts finished ones)."""
        return self.iterations + 1 if self.status in ("queued", "running") else self.iterations

    def line(self) -> str:
        cancelled = f" ({self.subcalls_cancelled} cancelled)" if self.subcalls_cancelled else ""
        return (
            f"[rlm] {self.status} · iteration {self.iteration} · "
            f"sub-calls {self.subcalls_done}/{self.subcalls_total}{cancelled} · "
            f"tokens {self.input_tokens:,} in / {self.output_tokens:,} out · ${self.cost_usd:.4f} · "
            f"{plural(self.llm_calls, 'model call')}"
        )


def read_snapshot(execution_id: str) -> Snapshot:
    """Call inside an app context. The figures are `rlm_shared.live_totals`' (the API's, the
    dashboard's): the trace's while the run goes on, the stored record's once it finished."""
    with db.engine.connect() as conn:
        row = conn.execute(sa.select(Execution).where(Execution.id == execution_id)).one()
        trace = trace_totals(conn, execution_id)
    shown = trace if row.status not in FINISHED_STATUSES else stored_totals(row._mapping)
    return Snapshot(
        status=row.status,
        iterations=row.iterations,
        subcalls_done=trace.sub_calls_done,
        subcalls_total=trace.sub_calls,
        input_tokens=shown.total_input_tokens,
        output_tokens=shown.total_output_tokens,
        cost_usd=shown.total_cost_usd,
        subcalls_cancelled=trace.sub_calls_cancelled,
        llm_calls=shown.llm_calls,
    )


class ProgressDisplay:
    """Start before the run, stop after it; `stop()` always shows the last state."""

    def __init__(
        self,
        app: Flask,
        execution_id: str,
        console: Console,
        interval: float = 0.2,
    ) -> None:
        self.app, self.execution_id, self.console = app, execution_id, console
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rlm-progress", daemon=True)
        self._last: Snapshot | None = None
        self._bar: Progress | None = None
        self._task = None

    def start(self) -> ProgressDisplay:
        if self.console.is_terminal:
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("sub-calls · {task.fields[tokens]} tokens · ${task.fields[cost]:.4f}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self._task = self._bar.add_task("starting", total=None, tokens="0", cost=0.0)
            self._bar.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._show()
        if self._bar is not None:
            self._bar.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._show()
            except Exception as exc:  # a busy database must not end the run; try again next tick
                self.console.print(f"[rlm] progress unavailable: {exc}", markup=False, highlight=False)

    def _show(self) -> None:
        with self.app.app_context():
            snap = read_snapshot(self.execution_id)
        if snap == self._last:
            return
        self._last = snap
        if self._bar is None:
            self.console.print(snap.line(), markup=False, highlight=False, soft_wrap=True)
            return
        self._bar.update(
            self._task,  # type: ignore[arg-type]
            description=f"{snap.status} · iteration {snap.iteration}",
            completed=snap.subcalls_done,
            total=snap.subcalls_total or None,
            tokens=f"{snap.input_tokens + snap.output_tokens:,}",
            cost=snap.cost_usd,
        )
