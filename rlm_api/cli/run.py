"""`rlm run`: one execution on the embedded default, in the foreground, with live progress."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def execution_options(settings: Any) -> dict[str, Any]:
    """The guards every execution starts with: the environment's defaults (see the README)."""
    from rlm_worker.engine.options import ExecutionOptions

    return ExecutionOptions(**settings.execution_defaults()).model_dump()


def session_named(name: str, context_id: str) -> Any:
    """The newest session called `name`, now over this input; a new one if there is none."""
    import sqlalchemy as sa

    from rlm_api.models import Session, db

    session = db.session.scalar(
        sa.select(Session).where(Session.name == name).order_by(Session.created_at.desc()).limit(1)
    )
    if session is None:
        session = Session(name=name, context_id=context_id, memory={}, variables={})
        db.session.add(session)
    else:
        session.context_id = context_id
    db.session.flush()
    return session


def create_execution(
    text: str, question: str, model: str | None, sub_model: str | None, session_name: str | None
) -> str:
    """Store the input and a queued execution (inside an app context); return its id."""
    from flask import current_app

    from rlm_api.contexts import store_context
    from rlm_api.models import Execution, db

    settings = current_app.config["RLM_SETTINGS"]
    if len(text) > settings.max_context_size:
        raise click.UsageError(
            f"the input has {len(text):,} characters; MAX_CONTEXT_SIZE is {settings.max_context_size:,}"
        )
    context_id = store_context(text).id
    session = session_named(session_name, context_id) if session_name else None
    root_model = model or settings.default_model
    execution = Execution(
        session_id=session.id if session else None,
        context_id=context_id,
        user_query=question,
        root_model=root_model,
        sub_model=sub_model or settings.sub_model or root_model,
        options=execution_options(settings),
        status="queued",
    )
    db.session.add(execution)
    db.session.commit()
    return execution.id


def mark_ended(execution_id: str, status: str, error: str) -> None:
    """Record why a run ended outside the engine (Ctrl-C, a crash before the engine started)."""
    import sqlalchemy as sa

    from rlm_api.models import Execution, db
    from rlm_worker.engine.types import utcnow

    db.session.rollback()
    db.session.execute(
        sa.update(Execution)
        .where(Execution.id == execution_id, Execution.status.in_(("queued", "running")))
        .values(status=status, error=error, finished_at=utcnow())
    )
    db.session.commit()


@click.command("run")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("-q", "--question", required=True, help="What to ask about the input.")
@click.option("--model", help="Root model, a litellm string (default: DEFAULT_MODEL).")
@click.option("--sub-model", help="Model of sub-calls (default: SUB_MODEL, else the root model).")
@click.option("--session", "session_name", help="Create or reuse a session by name: memory persists.")
@click.option("--json", "as_json", is_flag=True, help="Print the execution record instead of the answer.")
def run(
    file: Any,
    question: str,
    model: str | None,
    sub_model: str | None,
    session_name: str | None,
    as_json: bool,
) -> None:
    """Answer QUESTION about FILE (`-` reads standard input) on this machine.

    Embedded mode: the trace goes to DATABASE_URL if set, else to SQLite in your data folder;
    sub-calls run on a thread pool in this process. No Redis, no Postgres, no server. Progress
    goes to stderr, the answer to stdout; the exit code is non-zero when the execution fails.

    \b
    Examples:
      rlm run samples/northern_tern_log.txt -q "Which ports did the ship call at?"
      cat contract.txt | rlm run - -q "List every deadline" --model anthropic/claude-3-5-haiku-latest
      rlm run notes.txt -q "What changed since last time?" --session notes
      rlm run notes.txt -q "How many open items?" --json | jq .final_answer
    """
    from rich.console import Console

    from rlm_api.cli.local_app import embedded_database_url, open_app
    from rlm_api.cli.progress import ProgressDisplay
    from rlm_api.models import Execution, db
    from rlm_api.serializers import execution_dict
    from rlm_worker.embedded import SubCallTally, run_embedded
    from rlm_worker.logging_setup import configure_logging

    configure_logging(level="WARNING", fmt="text")
    text = file.read()
    app = open_app(embedded_database_url(), quiet=True)
    with app.app_context():
        execution_id = create_execution(text, question, model, sub_model, session_name)

    console = Console(stderr=True)
    if not console.is_terminal:
        console.print(f"[rlm] execution {execution_id}", markup=False, highlight=False)
    tally = SubCallTally()
    display = ProgressDisplay(app, execution_id, console, tally).start()
    try:
        run_embedded(app, execution_id, tally)
    except KeyboardInterrupt:
        with app.app_context():
            mark_ended(execution_id, "cancelled", "interrupted from the terminal")
        display.stop()
        click.echo(f"rlm: execution {execution_id} cancelled", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # the runner records engine failures itself; this is anything before
        with app.app_context():
            mark_ended(execution_id, "failed", f"internal error: {type(exc).__name__}: {exc}")
    display.stop()

    with app.app_context():
        execution = db.session.get(Execution, execution_id)
        assert execution is not None
        record = execution_dict(execution)
    if as_json:
        click.echo(json.dumps(record, indent=2, ensure_ascii=False))
    elif record["status"] == "succeeded":
        click.echo(record["final_answer"] or "")
    if record["status"] != "succeeded":
        reason = record["error"] or record["guard_hit"] or "no reason recorded"
        click.echo(f"rlm: execution {execution_id} {record['status']}: {reason}", err=True)
        sys.exit(EXIT_FAILED)
