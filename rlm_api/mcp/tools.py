"""The MCP server's tools, each a thin async wrapper around `actions` run in a worker thread
inside the Flask app, as the caller.

Who the caller is: over HTTP, the bearer token's owner (the `/mcp` route has already refused a
bad token; the tool derives the owner from the same header) and the `x-agent-id` header; over
stdio, the local user (no owner: everything in the local database, as `rlm run` sees it).

An `ask_*` tool starts an execution and waits for it up to `wait_seconds`, sending an MCP
progress notification each time the run gets further (an iteration or a sub-call done), with the
same figures `rlm run` prints; if the time is up first, it returns the execution as it stands,
and `get_execution` follows it up. The execution goes on if the client goes away.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from typing import Annotated, Any, Literal, TypeVar

import anyio
from flask import Flask, g
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from rlm_api.agents import BadAgentId, parse_agent_id
from rlm_api.auth import SESSION_KEY
from rlm_api.mcp import actions
from rlm_shared.models import FINISHED_STATUSES

T = TypeVar("T")

INSTRUCTIONS = (
    "RLM Engine answers questions about inputs far larger than a model's context window: the input "
    "becomes a variable in a sandboxed REPL and a root model writes code to read it, asking "
    "sub-models about pieces. Hand it the whole document (ask_about_text), a stored context, a "
    "session, or files on the server (ask_about_files); the answer comes with the execution's id, "
    "whose trace get_execution summarises. An answer_found of false means the input does not "
    "answer the question."
)
DEFAULT_WAIT_SECONDS = 240.0
MAX_WAIT_SECONDS = 3600.0

Question = Annotated[str, Field(description="What to ask about the input.", min_length=1)]
Model = Annotated[str | None, Field(description="Root model (litellm string); default: the server's.")]
SubModel = Annotated[str | None, Field(description="Model of sub-calls; default: the server's.")]
Strategy = Annotated[
    Literal["search", "find", "map_reduce"] | None,
    Field(description="A built-in root program instead of a root model (no root model is called)."),
]
Wait = Annotated[
    float,
    Field(
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="Seconds to wait for the answer; if it is not done by then, the execution as it "
        "stands is returned and get_execution follows it up.",
    ),
]


@dataclass(frozen=True)
class Caller:
    owner: str | None
    agent_id: str | None


def identify(app: Flask, ctx: Context, local_agent_id: str | None) -> Caller:
    headers = ctx.headers
    if headers is None:  # stdio: the local user
        return Caller(None, local_agent_id)
    try:
        agent_id = parse_agent_id(headers.get("x-agent-id"))
    except BadAgentId as exc:
        raise ToolError(str(exc)) from None
    state = app.extensions["rlm_auth"]
    if not state.enabled:
        return Caller(None, agent_id)
    scheme, _, token = headers.get("authorization", "").partition(" ")
    owner = state.owner_of(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    if owner is None:
        raise ToolError("send a valid API token: Authorization: Bearer <token>")
    return Caller(owner, agent_id)


def _in_app(app: Flask, caller: Caller, fn: Callable[[Caller], T]) -> T:
    with app.app_context():
        g.setdefault(SESSION_KEY, caller.owner)  # what `current_owner()` and `owned()` read
        try:
            return fn(caller)
        except actions.Refused as exc:
            raise ToolError(str(exc)) from None


def build_server(app: Flask, local_agent_id: str | None = None) -> MCPServer:
    """The server with its tools, bound to `app` (its database, settings and dispatch)."""
    server: MCPServer = MCPServer(
        name="rlm-engine",
        version=metadata.version("rlm-engine"),  # the client sees it as serverInfo.version
        instructions=INSTRUCTIONS,
        log_level="WARNING",
    )
    poll = float(app.config.get("MCP_PROGRESS_POLL_SECONDS", 0.5))

    async def run(ctx: Context, fn: Callable[[Caller], T]) -> T:
        caller = identify(app, ctx, local_agent_id)
        return await anyio.to_thread.run_sync(partial(_in_app, app, caller, fn))

    async def ask(ctx: Context, wait_seconds: float, start: Callable[[Caller], str]) -> dict[str, Any]:
        execution_id = await run(ctx, start)
        return await follow(ctx, execution_id, wait_seconds)

    async def follow(ctx: Context, execution_id: str, wait_seconds: float) -> dict[str, Any]:
        from rlm_api.cli.progress import read_snapshot

        deadline = anyio.current_time() + wait_seconds
        reported = 0
        while True:
            snap = await run(ctx, lambda _: read_snapshot(execution_id))
            work = snap.iterations + snap.subcalls_done
            if work > reported:  # MCP progress must grow with each notification
                reported = work
                await ctx.report_progress(work, None, snap.line().removeprefix("[rlm] "))
            if snap.status in FINISHED_STATUSES or anyio.current_time() >= deadline:
                break
            await anyio.sleep(min(poll, max(0.0, deadline - anyio.current_time())))
        return await run(ctx, lambda _: actions.execution_view(execution_id))

    def body(question: str, model: str | None, sub_model: str | None, strategy: str | None, **more: Any):
        return {"user_query": question, "model": model, "sub_model": sub_model, "strategy": strategy, **more}

    @server.tool()
    async def ask_about_text(
        question: Question,
        text: Annotated[str, Field(description="The input, as long as it is (up to MAX_CONTEXT_SIZE).")],
        ctx: Context,
        model: Model = None,
        sub_model: SubModel = None,
        strategy: Strategy = None,
        wait_seconds: Wait = DEFAULT_WAIT_SECONDS,
    ) -> dict[str, Any]:
        """Answer a question about a text given inline (a document, a log, a book)."""
        arguments = body(question, model, sub_model, strategy, context=text)
        return await ask(ctx, wait_seconds, lambda c: actions.submit(arguments, c.agent_id))

    @server.tool()
    async def ask_about_context(
        question: Question,
        context_id: Annotated[
            str, Field(description="The id of a stored context (an execution's context_id).")
        ],
        ctx: Context,
        model: Model = None,
        sub_model: SubModel = None,
        strategy: Strategy = None,
        wait_seconds: Wait = DEFAULT_WAIT_SECONDS,
    ) -> dict[str, Any]:
        """Answer a question about an input stored before (no need to send it again)."""
        arguments = body(question, model, sub_model, strategy)

        def start(c: Caller) -> str:
            return actions.submit(arguments, c.agent_id, context_id=actions.readable_context(context_id))

        return await ask(ctx, wait_seconds, start)

    @server.tool()
    async def ask_about_session(
        question: Question,
        session_id: Annotated[
            str, Field(description="A session's id: its input, memory and variables carry over.")
        ],
        ctx: Context,
        model: Model = None,
        sub_model: SubModel = None,
        strategy: Strategy = None,
        wait_seconds: Wait = DEFAULT_WAIT_SECONDS,
    ) -> dict[str, Any]:
        """Answer a question about a session's input, with the memory of its earlier runs."""
        arguments = body(question, model, sub_model, strategy, session_id=session_id)
        return await ask(ctx, wait_seconds, lambda c: actions.submit(arguments, c.agent_id))

    @server.tool()
    async def ask_about_files(
        question: Question,
        path: Annotated[
            str,
            Field(
                description="A file, folder or archive, relative to the server's files root "
                "(MCP_FILES_ROOT); `.` is the whole root. PDF, Word, PowerPoint, Excel, CSV, HTML, "
                "Markdown, JSON and text are read."
            ),
        ],
        ctx: Context,
        model: Model = None,
        sub_model: SubModel = None,
        strategy: Strategy = None,
        wait_seconds: Wait = DEFAULT_WAIT_SECONDS,
    ) -> dict[str, Any]:
        """Answer a question about files the server may read (only under its files root)."""

        def start(c: Caller) -> str:
            context, skipped = actions.read_files(path)
            return actions.submit(
                body(question, model, sub_model, strategy, context=context), c.agent_id, skipped=skipped
            )

        return await ask(ctx, wait_seconds, start)

    @server.tool()
    async def get_execution(
        execution_id: Annotated[str, Field(description="The execution's id.")],
        ctx: Context,
        wait_seconds: Annotated[
            float, Field(ge=0, le=MAX_WAIT_SECONDS, description="Wait up to this long for it to finish.")
        ] = 0.0,
    ) -> dict[str, Any]:
        """An execution's status, answer, totals and a summary of its trace."""
        await run(ctx, lambda _: actions.execution_view(execution_id, with_trace=False))  # exists, and yours
        return await follow(ctx, execution_id, wait_seconds)

    @server.tool()
    async def list_executions(
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=actions.MAX_LISTED, description="How many, newest first.")] = 10,
        status: Annotated[
            Literal["queued", "running", "succeeded", "failed", "timed_out", "cancelled"] | None,
            Field(description="Only executions in this status."),
        ] = None,
        this_agent_only: Annotated[
            bool, Field(description="Only the executions of the calling agent (its x-agent-id).")
        ] = False,
    ) -> dict[str, Any]:
        """Recent executions, newest first: id, status, question and answer."""

        def listed(c: Caller) -> dict[str, Any]:
            if this_agent_only and not c.agent_id:
                raise actions.Refused("this_agent_only needs an agent id (the x-agent-id header)")
            return {"executions": actions.recent(limit, status, c.agent_id if this_agent_only else None)}

        return await run(ctx, listed)

    return server
