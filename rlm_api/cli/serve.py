"""`rlm serve`: the API and the dashboard on one port, in embedded mode, for a laptop."""

from __future__ import annotations

import re
import sys
import threading
from typing import Any

import click

#: How long executions get to stop after Ctrl-C or SIGTERM before the server ends anyway.
STOP_WAIT_SECONDS = 3.0
STOPPED_REASON = "the server was stopped (Ctrl-C or SIGTERM) while it ran"


def _load_tools() -> list[str]:
    """The operator's custom tools (RLM_TOOLS), loaded before serving: one that cannot load stops
    the server here, saying why, rather than failing each execution."""
    from rlm_worker.services import tool_box
    from rlm_worker.tool_registry import ToolRegistrationError

    try:
        return tool_box().names()
    except ToolRegistrationError as exc:
        raise click.ClickException(f"custom tools: {exc}") from None


#: An ANSI style sequence (werkzeug colours each request line by its status).
ANSI_STYLE = re.compile(r"\x1b\[[0-9;]*m")


def request_log_handler() -> Any:
    """werkzeug's request handler; its request lines in colour on a terminal only, so a log file
    (`rlm serve > serve.log 2>&1`) holds plain text."""
    from werkzeug.serving import WSGIRequestHandler

    class RequestLogHandler(WSGIRequestHandler):
        def log(self, type: str, message: str, *args: Any) -> None:
            if not sys.stderr.isatty():
                message = ANSI_STYLE.sub("", message)
                args = tuple(ANSI_STYLE.sub("", a) if isinstance(a, str) else a for a in args)
            super().log(type, message, *args)

    return RequestLogHandler


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 exposes it.")
@click.option("--port", default=8000, show_default=True, envvar="PORT", type=int, help="Port (env PORT).")
def serve(host: str, port: int) -> None:
    """Serve the JSON API and the dashboard, running executions in this process.

    Uses DATABASE_URL if set, else the same SQLite file as `rlm run` (migrated on start), and
    runs executions on in-process threads: no Redis, no Celery. For a team, deploy the full
    stack instead (README, "Full stack"). Ctrl-C or SIGTERM stops it within a few seconds; the
    executions still running are recorded `cancelled`.

    \b
    Examples:
      rlm serve
      rlm serve --port 8080
      PORT=9000 rlm serve --host 0.0.0.0
    """
    from werkzeug.serving import make_server

    from rlm_api.cli.local_app import describe_database, embedded_database_url, open_app
    from rlm_api.cli.shutdown import SignalStop, exit_now
    from rlm_api.embedded import stop_all
    from rlm_worker.logging_setup import configure_logging

    configure_logging(fmt="text")
    tools = _load_tools()
    url = embedded_database_url()
    app = open_app(url)
    try:
        server = make_server(host, port, app, threaded=True, request_handler=request_log_handler())
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    stopped = threading.Event()

    def shut_down(signum: int) -> None:
        server.shutdown()
        left = stop_all(STOPPED_REASON, wait=STOP_WAIT_SECONDS)
        if left:
            click.echo(f"rlm: {len(left)} execution(s) did not stop in time; ending them", err=True)
        stopped.set()

    stop = SignalStop(shut_down, grace=STOP_WAIT_SECONDS + 1.0, notice="rlm: stopping the server…").install()
    click.echo(
        f"RLM Engine (embedded) on http://{host}:{port}/  ·  database {describe_database(url)}", err=True
    )
    if tools:
        click.echo(f"custom tools offered to the REPL: {', '.join(tools)}", err=True)
    server.serve_forever()
    stopped.wait()
    stop.finished()
    # Threads of executions that did not stop in time must not hold the exit; their REPLs go first.
    exit_now(0)
