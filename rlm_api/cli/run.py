"""`rlm run`: one execution on the embedded default, in the foreground, with live progress."""

from __future__ import annotations

import json
import signal
from typing import Any

import click

from rlm_api.planning import RunPlan, plan_run  # one plan for every way in (the offline plan too)

EXIT_FAILED = 1
EXIT_USAGE = 2
#: The execution succeeded but found no answer: the input does not answer the question.
EXIT_NOT_FOUND = 3
EXIT_INTERRUPTED = 130
#: How long after Ctrl-C an execution has to stop by itself before the process ends at once.
STOP_GRACE_SECONDS = 1.5
INTERRUPTED_BY = {
    signal.SIGINT: "interrupted from the terminal (Ctrl-C)",
    signal.SIGTERM: "stopped by SIGTERM",
}
NOT_FOUND_SENTENCE = (
    "rlm: no answer found: the input does not seem to answer this question "
    "(execution {id}; `rlm trace {id}` shows what was read)"
)


def execution_options(settings: Any, **overrides: Any) -> dict[str, Any]:
    """The guards every execution starts with: the environment's defaults (see the README), then
    what this run chose (a strategy, a root program, a chunk size)."""
    from rlm_worker.engine.options import ExecutionOptions

    return ExecutionOptions(**{**settings.execution_defaults(), **overrides}).model_dump()


def check_plan_models(settings: Any, plan: RunPlan, model: str | None, sub_model: str | None) -> None:
    """A model off MODEL_ALLOWLIST, or without its key, is a usage error before anything runs."""
    from rlm_api.model_checks import ModelRefused, check_models

    root = None if plan.root_label and not model else plan.root_model  # no root model is called
    # The model the user typed is checked first, so its refusal names it (not a default's).
    chosen_first = {"sub_model": plan.sub_model, "model": root} if sub_model and not model else {}
    try:
        check_models(
            settings,
            root_is_a_model=not plan.root_label,
            **(chosen_first or {"model": root, "sub_model": plan.sub_model}),
        )
    except ModelRefused as exc:
        chosen = {"model": "--model" if model else None, "sub_model": "--sub-model" if sub_model else None}
        option = chosen.get(exc.field)
        raise click.UsageError(f"{option}: {exc.message}" if option else exc.message) from None


def session_named(name: str, context_id: str, replace_context: bool = False) -> Any:
    """The newest session called `name`; a new one over this input if there is none.

    A session already over another input keeps it: replacing what a session (perhaps made through
    the API) reads is refused unless `replace_context` (`--replace-context`) says so."""
    import sqlalchemy as sa

    from rlm_api.database import db
    from rlm_shared.models import Session

    session = db.session.scalar(
        sa.select(Session).where(Session.name == name).order_by(Session.created_at.desc()).limit(1)
    )
    if session is None:
        session = Session(name=name, context_id=context_id, memory={}, variables={})
        db.session.add(session)
    elif session.context_id != context_id:
        if session.context_id is not None and not replace_context:
            db.session.rollback()
            raise click.UsageError(
                f"session {name!r} already reads another input{_size_of(session.context_id)}; "
                "run again with --replace-context to make it read this one (its memory and "
                "variables are kept), or choose another --session name"
            )
        session.context_id = context_id
    db.session.flush()
    return session


def _size_of(context_id: str | None) -> str:
    from rlm_api.database import db
    from rlm_shared.models import Context

    context = db.session.get(Context, context_id) if context_id else None
    return f" ({context.size_chars:,} characters)" if context is not None else ""


def create_execution(
    context: Any, question: str, plan: RunPlan, session_name: str | None, replace_context: bool = False
) -> str:
    """Store the input (a text, or a list of documents) and a queued execution (inside an app
    context); return its id."""
    from flask import current_app
    from pydantic import ValidationError

    from rlm_api.database import db
    from rlm_shared.contexts import context_size, store_context
    from rlm_shared.models import Execution

    settings = current_app.config["RLM_SETTINGS"]
    size = context_size(context)
    if size > settings.max_context_size:
        raise click.UsageError(
            f"the input has {size:,} characters; MAX_CONTEXT_SIZE is {settings.max_context_size:,}"
        )
    try:
        options = execution_options(settings, **plan.options)
    except ValidationError as exc:
        raise click.UsageError(
            f"invalid options: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}"
        ) from None
    context_id = store_context(context).id
    session = session_named(session_name, context_id, replace_context) if session_name else None
    execution = Execution(
        session_id=session.id if session else None,
        context_id=context_id,
        user_query=question,
        root_model=plan.root_model,
        sub_model=plan.sub_model,
        options=options,
        offline=plan.offline,
        status="queued",
    )
    db.session.add(execution)
    db.session.commit()
    return execution.id


def mark_ended(execution_id: str, status: str, error: str) -> None:
    """Record why a run ended outside the engine (Ctrl-C, a crash before the engine started)."""
    import sqlalchemy as sa

    from rlm_api.database import db
    from rlm_shared.models import Execution
    from rlm_worker.engine.types import utcnow

    db.session.rollback()
    db.session.execute(
        sa.update(Execution)
        .where(Execution.id == execution_id, Execution.status.in_(("queued", "running")))
        .values(status=status, error=error, finished_at=utcnow())
    )
    db.session.commit()


@click.command("run")
@click.argument("source", metavar="INPUT", type=click.Path(allow_dash=True))
@click.option("-q", "--question", required=True, help="What to ask about the input.")
@click.option("--model", help="Root model, a litellm string (default: DEFAULT_MODEL).")
@click.option("--sub-model", help="Model of sub-calls (default: SUB_MODEL, else the root model).")
@click.option(
    "--strategy",
    type=click.Choice(["search", "find", "map_reduce"]),
    help="Run this built-in root program instead of a root model (no root model is called).",
)
@click.option(
    "--root-code",
    "root_code_file",
    type=click.File("r", encoding="utf-8"),
    help="Run the Python in this file as the root program instead of a root model.",
)
@click.option(
    "--max-concurrent-subcalls",
    type=click.IntRange(min=1),
    help="How many of this run's sub-calls are in flight at once (default: no limit of its own).",
)
@click.option(
    "--session",
    "session_name",
    help="Create or reuse a session by name: memory persists. A session over another input is refused.",
)
@click.option(
    "--replace-context",
    is_flag=True,
    help="With --session: let an existing session read this input instead of the one it had.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the execution record instead of the answer.")
def run(
    source: str,
    question: str,
    model: str | None,
    sub_model: str | None,
    strategy: str | None,
    root_code_file: Any,
    max_concurrent_subcalls: int | None,
    session_name: str | None,
    replace_context: bool,
    as_json: bool,
) -> None:
    """Answer QUESTION about INPUT on this machine: a file, a folder, a zip or tar archive, or `-`
    (standard input). PDF, Word, PowerPoint, Excel, CSV, HTML, Markdown, JSON and text in any
    common encoding are converted to text; a folder or archive becomes a list of documents, and
    the files in it that cannot be read are skipped and named on stderr.

    Embedded mode: the trace goes to DATABASE_URL if set, else to SQLite in your data folder;
    sub-calls run on a thread pool in this process. No Redis, no Postgres, no server. Progress
    goes to stderr, the answer to stdout.

    \b
    Exit codes:
      0    an answer was found (printed on stdout)
      1    the execution failed, timed out or was stopped by a guard (the reason on stderr)
      2    bad usage
      3    no answer found: the input does not answer the question (a sentence on stderr,
           nothing on stdout; with --json the record says "answer_found": false)
      130  interrupted (Ctrl-C)

    With no --model/--sub-model and no provider configured (no API key, no LLM_API_BASE), the
    bundled local model answers the sub-calls and the built-in `search` strategy plays the root.

    \b
    Examples:
      rlm run samples/northern_tern_log.txt -q "Which ports did the ship call at?"
      cat contract.txt | rlm run - -q "List every deadline" --model anthropic/claude-3-5-haiku-latest
      rlm run notes.txt -q "What changed since last time?" --session notes
      rlm run big.txt -q "List every date" --max-concurrent-subcalls 4
      rlm run notes.txt -q "How many open items?" --json | jq .final_answer
      rlm run book.txt -q "Who is Ahab?" --strategy find --sub-model local/smollm2
      rlm run logs.txt -q "Count the errors" --root-code my_root.py
      rlm run ./contracts/ -q "Which contracts end in 2031?"
      rlm run bundle.zip -q "Which report mentions the recall?"
    """
    from rlm_api.cli.inputs import check_question, read_input, report_skipped
    from rlm_shared.config import get_settings

    question = check_question(question)  # a bad input is refused before the heavy imports
    converted = read_input(source, get_settings())

    from rich.console import Console

    from rlm_api.cli.local_app import embedded_database_url, open_app
    from rlm_api.cli.progress import ProgressDisplay
    from rlm_api.cli.shutdown import SignalStop, exit_now
    from rlm_api.database import db
    from rlm_api.embedded import mark_cancelled, run_embedded
    from rlm_api.serializers import execution_dict
    from rlm_shared.models import Execution
    from rlm_worker.engine import local_model
    from rlm_worker.logging_setup import configure_logging

    configure_logging(level="WARNING", fmt="text")
    root_code = root_code_file.read() if root_code_file else None
    if root_code is not None and not root_code.strip():
        raise click.UsageError("the --root-code file is empty")
    app = open_app(embedded_database_url(), quiet=True)
    with app.app_context():
        plan = plan_run(app.config["RLM_SETTINGS"], model, sub_model, strategy, root_code)
        check_plan_models(app.config["RLM_SETTINGS"], plan, model, sub_model)
        if converted.skipped:
            plan.options["skipped"] = converted.skipped_dicts
        if max_concurrent_subcalls is not None:
            refusal = app.config["RLM_SETTINGS"].concurrent_subcalls_refusal(max_concurrent_subcalls)
            if refusal:
                raise click.UsageError(f"--max-concurrent-subcalls: {refusal}")
            plan.options["max_concurrent_subcalls"] = max_concurrent_subcalls
        execution_id = create_execution(converted.context, question, plan, session_name, replace_context)

    if local_model.is_local(plan.sub_model) or local_model.is_local(plan.root_model):
        local_model.warm_up()  # the model loads while the sandbox starts
    report_skipped(converted)
    if plan.notice:
        click.echo(plan.notice, err=True)
    console = Console(stderr=True)
    # On stderr, terminal or not, so stdout stays the answer and `rlm trace ID` can follow the run.
    console.print(f"[rlm] execution {execution_id}", markup=False, highlight=False, soft_wrap=True)
    if plan.progress_line():
        console.print(plan.progress_line(), markup=False, highlight=False, soft_wrap=True)
    display = ProgressDisplay(app, execution_id, console).start()
    stop = SignalStop(
        lambda signum: mark_cancelled(app, execution_id, INTERRUPTED_BY[signum]),
        grace=STOP_GRACE_SECONDS,
        notice="rlm: stopping… (Ctrl-C again to stop at once)",
    ).install()
    try:
        run_embedded(app, execution_id)
    except Exception as exc:  # the runner records engine failures itself; this is anything before
        with app.app_context():
            mark_ended(execution_id, "failed", f"internal error: {type(exc).__name__}: {exc}")
    display.stop()

    with app.app_context():
        execution = db.session.get(Execution, execution_id)
        assert execution is not None
        record = execution_dict(execution)
    code = print_outcome(record, as_json)
    stop.finished()
    # The answer is printed and the record committed: end here. The interpreter's own teardown
    # would wait on the threads of this run (the in-process llama.cpp server waits for its idle
    # keep-alive connections to time out; a request an interrupted run left is still computing).
    exit_now(stop.exit_code if stop.exit_code is not None else code)


def print_outcome(record: dict[str, Any], as_json: bool) -> int:
    """The answer on stdout; no answer found or a failure as one sentence on stderr. Returns the exit code."""
    if as_json:
        click.echo(json.dumps(record, indent=2, ensure_ascii=False))
    elif record["status"] == "succeeded" and record["answer_found"] is not False:
        click.echo(record["final_answer"] or "")
    if record["status"] != "succeeded":
        reason = record["error"] or record["guard_hit"] or "no reason recorded"
        click.echo(f"rlm: execution {record['id']} {record['status']}: {reason}", err=True)
        return EXIT_FAILED
    if record["answer_found"] is False:
        click.echo(NOT_FOUND_SENTENCE.format(id=record["id"]), err=True)
        return EXIT_NOT_FOUND
    click.echo(f"rlm: execution {record['id']} succeeded (`rlm trace {record['id']}` shows its tree)", err=True)
    return 0
