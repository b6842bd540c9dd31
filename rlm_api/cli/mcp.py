"""`rlm mcp`: the MCP server over stdio, for Claude Desktop, Cursor and other local agents."""

from __future__ import annotations

import click

#: How long executions still running get to stop when the client closes the server.
STOP_WAIT_SECONDS = 3.0
STOPPED_REASON = "the MCP client closed `rlm mcp` while it ran"


@click.command("mcp")
@click.option(
    "--agent-id",
    envvar="RLM_AGENT_ID",
    help="Record this agent id on the executions it starts (env RLM_AGENT_ID), as x-agent-id does over HTTP.",
)
def mcp(agent_id: str | None) -> None:
    """Serve RLM Engine's tools to an MCP client over stdio (standard input and output).

    Runs like `rlm run`, as you and on this machine: embedded mode, the database `rlm run` uses
    (DATABASE_URL if set, else SQLite in your data folder), executions on in-process threads,
    the same models and keys. Tools: ask_about_text, ask_about_context, ask_about_session,
    ask_about_files (only under MCP_FILES_ROOT; unset = refused), get_execution,
    list_executions. Logs go to stderr; stdout carries the protocol only.

    \b
    Claude Desktop (claude_desktop_config.json):
      {"mcpServers": {"rlm": {"command": "rlm", "args": ["mcp"],
                              "env": {"MCP_FILES_ROOT": "/home/me/Documents"}}}}
    """
    from rlm_api.agents import BadAgentId, parse_agent_id

    try:
        agent_id = parse_agent_id(agent_id)
    except BadAgentId as exc:
        raise click.BadParameter(str(exc), param_hint="--agent-id") from None

    from rlm_api.cli.local_app import embedded_database_url, open_app
    from rlm_api.embedded import stop_all
    from rlm_api.mcp.tools import build_server
    from rlm_worker.logging_setup import configure_logging

    configure_logging(level="WARNING", fmt="text")  # stderr: stdout belongs to the protocol
    app = open_app(embedded_database_url(), quiet=True)
    try:
        build_server(app, local_agent_id=agent_id).run("stdio")
    finally:
        left = stop_all(STOPPED_REASON, wait=STOP_WAIT_SECONDS)
        if left:
            click.echo(f"rlm: {len(left)} execution(s) did not stop in time", err=True)
