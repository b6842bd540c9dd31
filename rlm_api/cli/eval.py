"""`rlm eval`: run a task suite through the engine under one or more configurations, beside the
base model alone, and write the report (Markdown, JSON) and the plot (SVG, PNG)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click


def _sizes(value: str | None) -> list[int] | None:
    if not value:
        return None
    sizes = []
    for part in value.split(","):
        part = part.strip().lower()
        factor = 1000 if part.endswith("k") else 1_000_000 if part.endswith("m") else 1
        try:
            sizes.append(int(float(part.rstrip("km")) * factor))
        except ValueError:
            raise click.BadParameter(
                f"{part!r} is not a size (e.g. 8000, 32k, 1m)", param_hint="--sizes"
            ) from None
    return sizes


def build_spec(options: dict[str, Any]) -> tuple[Any, Path | None]:
    """The EvalSpec from a config file (if any) and the options, which win over the file."""
    from pydantic import ValidationError

    from rlm_api.evals.configs import EvalSpec, load_spec_file
    from rlm_api.evals.tasks import TaskError

    data: dict[str, Any] = {}
    base = None
    if options["config_file"]:
        path = Path(options["config_file"])
        try:
            data = load_spec_file(path)
        except TaskError as exc:
            raise click.UsageError(str(exc)) from None
        base = path.parent
    config = {
        "model": options["model"],
        "sub_model": options["sub_model"],
        "strategy": options["strategy"],
        "root_code": options["root_code"].read() if options["root_code"] else None,
        "chunk_size": options["chunk_size"],
        "max_iterations": options["max_iterations"],
        "window_tokens": options["window_tokens"],
        "name": options["label"],
    }
    config = {k: v for k, v in config.items() if v is not None}
    if config and "configs" in data:
        raise click.UsageError("give configurations in the --config file or as options, not both")
    if config:
        data["configs"] = [config]
    for key, value in (
        ("suite", options["suite"]),
        ("tasks", list(options["tasks"]) or None),
        ("sizes", _sizes(options["sizes"])),
        ("items", options["items"]),
        ("seed", options["seed"]),
        ("name", options["name"]),
    ):
        if value is not None:
            data[key] = value
    if options["task_files"]:
        data["task_files"] = [str(Path(p).resolve()) for p in options["task_files"]]
    if options["no_baseline"]:
        data["baseline"] = False
    try:
        return EvalSpec.model_validate(data), base
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "eval"
        raise click.UsageError(f"{where}: {error['msg'].removeprefix('Value error, ')}") from None


@click.command("eval")
@click.option(
    "--suite", type=click.Choice(["tiny", "small", "paper"]), help="A bundled suite (default: small)."
)
@click.option(
    "--task",
    "tasks",
    multiple=True,
    help="A bundled task: needle, multi_needle, aggregation, pairs, documents.",
)
@click.option(
    "--tasks-file",
    "task_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Your own tasks, JSONL (see docs/eval.md). Repeatable.",
)
@click.option("--sizes", help="Input sizes in characters, comma-separated (8000,32k,1m).")
@click.option("--items", type=int, help="Items per task and size.")
@click.option("--seed", type=int, help="Seed of the generated items (same seed, same items).")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML or JSON file with several configurations (and tasks, sizes, ...).",
)
@click.option("--model", help="Root model of the configuration (default: DEFAULT_MODEL).")
@click.option("--sub-model", help="Sub-call model (default: SUB_MODEL, else the root model).")
@click.option(
    "--strategy", type=click.Choice(["search", "find", "map_reduce"]), help="A built-in root program."
)
@click.option("--root-code", type=click.File("r", encoding="utf-8"), help="Your own root program.")
@click.option("--chunk-size", type=int, help="Chunk size of the configuration.")
@click.option("--max-iterations", type=int, help="Root iterations of the configuration.")
@click.option("--window-tokens", type=int, help="The base model's window for the baseline (tokens).")
@click.option("--label", help="Name of the configuration in the report (default: made from its choices).")
@click.option("--no-baseline", is_flag=True, help="Skip the base model alone.")
@click.option(
    "--cache", is_flag=True, help="Answer repeated model calls from the call cache (MODEL_CALL_CACHE)."
)
@click.option(
    "--parallel", type=click.IntRange(1, 32), default=1, show_default=True, help="Executions at once."
)
@click.option("--server", help="Run it on a deployment instead (its URL): POST /api/evals, its workers.")
@click.option("--token", envvar="RLM_API_TOKEN", help="Bearer token for --server (or RLM_API_TOKEN).")
@click.option("--name", help="A name for the run.")
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), help="Report folder (default: ./rlm-eval-<id>)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report instead of the Markdown.")
def eval_command(**options: Any) -> None:
    """Measure answer quality, cost and time of one or more configurations on a task suite, beside
    the base model alone on the input cut to its window (the RLM paper's baseline).

    Every item runs as an ordinary execution in embedded mode (as `rlm run`: DATABASE_URL or the
    per-user SQLite file), so `rlm trace ID` and the dashboard show each one. The report folder
    gets report.md, report.json, plot.svg and plot.png.

    \b
    Examples:
      rlm eval --suite small
      rlm eval --task needle --task aggregation --sizes 32k,128k --items 3 --model openai/gpt-5-mini
      rlm eval --config compare.yaml --cache
      rlm eval --tasks-file my_questions.jsonl --strategy find --sub-model local/smollm2
      rlm eval --suite small --server http://rlm.internal:8000 --token $TOKEN
    """
    if options["cache"]:
        os.environ["MODEL_CALL_CACHE"] = "true"
    spec, base = build_spec(options)
    if options["server"]:
        from rlm_api.cli.eval_remote import run_remote

        if options["cache"]:
            raise click.UsageError("--cache is the workers' setting on a deployment (MODEL_CALL_CACHE)")
        if base is not None and spec.task_files:
            spec.task_files = [str(base / f) for f in spec.task_files]
        report = run_remote(
            options["server"], options["token"], spec, lambda line: click.echo(line, err=True)
        )
        out = write_report(
            report,
            Path(options["out_dir"] or f"rlm-eval-{report['eval_id'][:8]}"),
            options["server"].rstrip("/"),
        )
        click.echo(json.dumps(report, indent=2) if options["as_json"] else (out / "report.md").read_text())
        click.echo(f"[rlm] report in {out}/ (report.md, report.json, plot.svg, plot.png)", err=True)
        return

    from rlm_api.cli.local_app import embedded_database_url, open_app
    from rlm_api.cli.shutdown import exit_now
    from rlm_api.evals import runner
    from rlm_api.evals.tasks import TaskError
    from rlm_api.model_checks import ModelRefused
    from rlm_shared.config import get_settings
    from rlm_worker.engine import local_model
    from rlm_worker.logging_setup import configure_logging

    get_settings.cache_clear()
    configure_logging(level="WARNING", fmt="text")
    app = open_app(embedded_database_url(), quiet=True)
    with app.app_context():
        try:
            run = runner.start(app.config["RLM_SETTINGS"], spec, base)
        except (TaskError, ModelRefused) as exc:
            raise click.UsageError(getattr(exc, "message", None) or str(exc)) from None
        run_id = run.id
        models = runner.models_called(run_id)
        total = len(runner.store.run_items(run_id))
    if any(local_model.is_local(m) for m in models):
        local_model.warm_up()  # the model loads while the first sandbox starts
    click.echo(f"[rlm] eval {run_id}: {total} executions", err=True)
    try:
        runner.run_here(
            app,
            run_id,
            options["parallel"],
            on_done=lambda done, total: click.echo(f"[rlm] eval {run_id}: {done}/{total} done", err=True),
        )
    except KeyboardInterrupt:
        from rlm_api.embedded import stop_all

        stop_all("rlm eval interrupted from the terminal (Ctrl-C)", wait=2.0)
        click.echo(f"rlm: eval {run_id} interrupted; its unfinished executions are cancelled", err=True)
        exit_now(130)
    with app.app_context():
        run = runner.store.db.session.get(runner.EvalRun, run_id)
        report = run.report
    # Links in the Markdown open the traces in `rlm serve` (the same database).
    base_url = f"http://127.0.0.1:{os.environ.get('PORT') or 8000}"
    out = write_report(report, Path(options["out_dir"] or f"rlm-eval-{run_id[:8]}"), base_url)
    click.echo(json.dumps(report, indent=2) if options["as_json"] else (out / "report.md").read_text())
    click.echo(f"[rlm] report in {out}/ (report.md, report.json, plot.svg, plot.png)", err=True)
    exit_now(0)  # as `rlm run`: the local model server's threads would hold the interpreter's exit


def write_report(report: dict[str, Any], out: Path, base_url: str = "") -> Path:
    from rlm_api.evals import plot
    from rlm_api.evals.report import markdown

    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (out / "report.md").write_text(markdown(report, base_url), encoding="utf-8")
    (out / "plot.svg").write_bytes(plot.render(report, "svg"))
    (out / "plot.png").write_bytes(plot.render(report, "png"))
    return out
