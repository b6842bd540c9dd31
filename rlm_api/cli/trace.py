"""`rlm trace ID`: an execution's tree in the terminal — every agent, call, cost and outcome."""

from __future__ import annotations

import os
from typing import Any

import click

#: The width of `rlm trace` into a file or a pipe: wide enough that no line is cut.
UNCUT_WIDTH = 100_000
STATUS_STYLE = {"succeeded": "green", "failed": "red", "timed_out": "yellow", "cancelled": "dim"}


def find_execution(id_or_prefix: str) -> Any:
    """The execution with this id, or the only one whose id starts with it."""
    import sqlalchemy as sa

    from rlm_api.database import db
    from rlm_shared.models import Execution

    execution = db.session.get(Execution, id_or_prefix)
    if execution is not None:
        return execution
    matches = db.session.scalars(
        sa.select(Execution).where(Execution.id.startswith(id_or_prefix, autoescape=True)).limit(2)
    ).all()
    if len(matches) == 1:
        return matches[0]
    problem = "matches several executions" if matches else "matches no execution"
    raise click.ClickException(f"{id_or_prefix!r} {problem}")


def _snippet(node: Any, passage: str | None = None) -> str:
    """What the node did, on one line: its error, its program (a strategy's, not the helpers it
    starts with), the passage a sub-call read, or the start of its reply or prompt."""
    from rlm_shared.strategies import split_helpers

    if node.error:
        text = node.error
    elif node.code:
        text = split_helpers(node.code)[1]
    else:
        text = passage or node.response or node.prompt or ""
    return " ".join(text.split())


def one_line(markup: str) -> Any:
    """A label that never wraps: what does not fit the terminal ends in an ellipsis."""
    from rich.text import Text

    text = Text.from_markup(markup)
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


def node_label(node: Any, passage: str | None = None) -> Any:
    """Two lines that never wrap: what the node is and cost, then what it did (dimmed)."""
    from rich.console import Group
    from rich.markup import escape

    style = STATUS_STYLE.get(node.status, "cyan")
    parts = [f"[bold]{node.kind}[/bold]"]
    if node.model:
        parts.append(escape(node.model))
    parts.append(f"[{style}]{node.status}[/{style}]")
    if node.input_tokens or node.output_tokens:
        parts.append(f"{node.input_tokens:,}/{node.output_tokens:,} tok")
    if node.cost_usd:
        parts.append(f"${node.cost_usd:.4f}")
    if node.duration_seconds is not None:
        parts.append(f"{node.duration_seconds:.2f}s")
    head = one_line("  ".join(parts))
    snippet = _snippet(node, passage)
    return Group(head, one_line(f"[dim]{escape(snippet)}[/dim]")) if snippet else head


def call_passages(nodes: list[Any], docs: list[tuple[str | None, str]]) -> dict[str, str]:
    """node id -> which passage the sub-call read (the same labels as the dashboard's)."""
    from collections import defaultdict

    from rlm_api.passages import PromptView, describe, locate, passage_of, template_edges

    views = {
        n.id: PromptView(n.prompt, n.prompt, len(n.prompt))
        for n in nodes
        if n.kind == "llm_call" and n.prompt
    }
    batches: dict[str | None, list[Any]] = defaultdict(list)
    for n in nodes:
        if n.id in views:
            batches[n.parent_id].append(n)
    everyone = dict(zip(views, template_edges(list(views.values())) or [], strict=False))
    out = {}
    for batch in batches.values():
        own = template_edges([views[n.id] for n in batch])
        for index, n in enumerate(batch, start=1):
            passage = passage_of(views[n.id], index, own[index - 1] if own else everyone.get(n.id))
            if passage is not None:
                head = views[n.id].head[passage.start_in_prompt :]
                out[n.id] = describe(passage, locate(docs, head, passage.length))
    return out


def execution_tree(execution: Any, nodes: list[Any], docs: list[tuple[str | None, str]] | None = None) -> Any:
    """Call inside an app context (the totals are read as the API reads them)."""
    from rich.console import Group
    from rich.markup import escape
    from rich.tree import Tree

    from rlm_api.database import db
    from rlm_shared.live_totals import totals_for
    from rlm_shared.wording import plural

    totals = totals_for(db.session, execution.id, execution.status, execution)

    style = STATUS_STYLE.get(execution.status, "cyan")
    tree = Tree(
        Group(
            one_line(
                f"[bold]execution {execution.id}[/bold]  [{style}]{execution.status}[/{style}]  "
                f"{plural(execution.iterations, 'iteration')}  {plural(totals.llm_calls, 'model call')}  "
                f"{totals.total_input_tokens:,}/{totals.total_output_tokens:,} tok  "
                f"${totals.total_cost_usd:.4f}"
            ),
            one_line(f"[dim]{escape(execution.user_query)}[/dim]"),
        )
    )
    passages = call_passages(nodes, docs or [])
    branches: dict[str, Any] = {}
    for node in nodes:  # display order: a parent always comes before its children
        parent = branches.get(node.parent_id or "", tree)
        branches[node.id] = parent.add(node_label(node, passages.get(node.id)))
    if execution.final_answer:
        tree.add(f"[bold green]answer[/bold green]  {escape(execution.final_answer)}")
    if execution.error:
        tree.add(f"[bold red]error[/bold red]  {escape(execution.error)}")
    return tree


@click.command("trace")
@click.argument("execution_id")
def trace(execution_id: str) -> None:
    """Print the tree of EXECUTION_ID (or a unique prefix of it) from the embedded database.

    Reads DATABASE_URL if set, else the SQLite file `rlm run` writes. Each line shows the node's
    kind, model, status, tokens in/out, cost, duration and the start of its code (a strategy's
    own program), of the passage a sub-call read, or of its reply; lines end in "…" where the
    terminal is too narrow. Written to a file or a pipe, lines are never cut (unless COLUMNS is set). The answer and any
    error are printed whole.

    \b
    Examples:
      rlm trace 3f2a9c
      DATABASE_URL=postgresql://rlm@db.internal/rlm rlm trace 3f2a9c41d0e84b6f9a1c2e3d4f5a6b7c
    """
    import sqlalchemy as sa
    from rich.console import Console

    from rlm_api.cli.local_app import embedded_database_url, open_app
    from rlm_api.database import db
    from rlm_api.passages import documents
    from rlm_shared.models import Context, TraceNode

    app = open_app(embedded_database_url(), quiet=True)
    with app.app_context():
        execution = find_execution(execution_id)
        nodes = db.session.scalars(
            sa.select(TraceNode).where(TraceNode.execution_id == execution.id).order_by(TraceNode.path)
        ).all()
        context = db.session.get(Context, execution.context_id)
        docs = documents(context.kind, context.content) if context is not None else []
        tree = execution_tree(execution, list(nodes), docs)
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=UNCUT_WIDTH)  # a file or a pipe: whole lines, not rich's 80 columns
    console.print(tree)
