"""`rlm serve`: the API and the dashboard on one port, in embedded mode, for a laptop."""

from __future__ import annotations

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 exposes it.")
@click.option("--port", default=8000, show_default=True, envvar="PORT", type=int, help="Port (env PORT).")
def serve(host: str, port: int) -> None:
    """Serve the JSON API and the dashboard, running executions in this process.

    Uses DATABASE_URL if set, else the same SQLite file as `rlm run` (migrated on start), and
    runs executions on in-process threads: no Redis, no Celery. For a team, deploy the full
    stack instead (README, "Full stack").

    \b
    Examples:
      rlm serve
      rlm serve --port 8080
      PORT=9000 rlm serve --host 0.0.0.0
    """
    from rlm_api.cli.local_app import describe_database, embedded_database_url, open_app
    from rlm_worker.logging_setup import configure_logging

    configure_logging(fmt="text")
    url = embedded_database_url()
    app = open_app(url)
    click.echo(
        f"RLM Engine (embedded) on http://{host}:{port}/  ·  database {describe_database(url)}", err=True
    )
    app.run(host=host, port=port, threaded=True, debug=False, use_reloader=False)
