"""`rlm trace ID`: an execution's tree in the terminal — every agent, call, cost and outcome."""

from __future__ import annotations

from typing import Any

import click

STATUS_STYLE = {"succeeded": "green", "failed": "red", "timed_out": "yellow", "cancelled": "yellow"}


def find_execution(id_or_prefix: str) -> Any:
    """The execution with this id, or the only one whose id starts with it."""
    import sqlalchemy as sa

    from rlm_api.models import Execution, db

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


def _snippet(node: Any, width: int = 70) -> str:
    text = node.error or node.code or node.response or node.prompt or ""
    first = " ".join(text.split())
    return first if len(first) <= width else first[: width - 1] + "…"


def node_label(node: Any) -> str:
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
    snippet = _snippet(node)
    if snippet:
        parts.append(f"[dim]— {escape(snippet)}[/dim]")
    return "  ".join(parts)


def execution_tree(execution: Any, nodes: list[Any]) -> Any:
    from rich.markup import escape
    from rich.tree import Tree

    style = STATUS_STYLE.get(execution.status, "cyan")
    tree = Tree(
        f"[bold]execution {execution.id}[/bold]  [{style}]{execution.status}[/{style}]  "
        f"{execution.iterations} iterations  {execution.llm_calls} model calls  "
        f"{execution.total_input_tokens:,}/{execution.total_output_tokens:,} tok  "
        f"${execution.total_cost_usd:.4f}\n[dim]{escape(execution.user_query)}[/dim]"
    )
    branches: dict[str, Any] = {}
    for node in nodes:  # display order: a parent always comes before its children
        parent = branches.get(node.parent_id or "", tree)
        branches[node.id] = parent.add(node_label(node))
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
    kind, model, status, tokens in/out, cost, duration and the start of its code or reply.

    \b
    Examples:
      rlm trace 3f2a9c
      DATABASE_URL=postgresql://rlm@db.internal/rlm rlm trace 3f2a9c41d0e84b6f9a1c2e3d4f5a6b7c
    """
    import sqlalchemy as sa
    from rich.console import Console

    from rlm_api.cli.local_app import embedded_database_url, open_app
    from rlm_api.models import TraceNode, db

    app = open_app(embedded_database_url(), quiet=True)
    with app.app_context():
        execution = find_execution(execution_id)
        nodes = db.session.scalars(
            sa.select(TraceNode).where(TraceNode.execution_id == execution.id).order_by(TraceNode.path)
        ).all()
        Console().print(execution_tree(execution, list(nodes)))
