"""`rlm run` and `rlm trace` end to end: the README's commands, in a fresh data folder, against the
scripted model server. Real subprocesses, real SQLite, the real engine and sandbox."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from samples.make_ship_log import FACTS
from tests.cli.readme import readme_command, run_shell
from tests.cli.scripts import program_responder, ship_log_responder
from tests.support.scripted_model import ScriptedError

PROGRESS = re.compile(r"\[rlm\] (\w+) · iteration (\d+) · sub-calls (\d+)/(\d+) · tokens ([\d,]+) in")


def embedded_db(env: dict[str, str]) -> Path:
    return Path(env["XDG_DATA_HOME"]) / "rlm-engine" / "rlm.db"


def test_quick_start_answers_from_the_sample_and_shows_progress(cli_env, scripted):
    scripted.responder = ship_log_responder
    command = readme_command('rlm run samples/northern_tern_log.txt -q "On which')

    done = run_shell(command, cli_env)

    assert done.returncode == 0, done.stderr
    for port, day in FACTS["arrivals"].items():
        assert port in done.stdout and day in done.stdout, done.stdout
    progress = PROGRESS.findall(done.stderr)
    assert progress, done.stderr
    last = progress[-1]
    assert last[0] == "succeeded" and int(last[1]) >= 1
    assert last[2] == last[3] == "4"  # 145 entries asked in parts of 40
    assert "$" in done.stderr
    # 1 root call + 4 sub-calls reached the model; the trace is in the per-user SQLite file.
    assert scripted.stats()["by_model"] == {"scripted-root": 1, "scripted-sub": 4}
    with sqlite3.connect(embedded_db(cli_env)) as conn:
        kinds = dict(conn.execute("SELECT kind, count(*) FROM trace_nodes GROUP BY kind").fetchall())
    assert kinds["llm_call"] == 4 and kinds["root"] == 1


def test_stdin_and_json_print_the_execution_record(cli_env, scripted):
    scripted.responder = ship_log_responder
    command = readme_command("cat samples/northern_tern_log.txt | rlm run -")

    done = run_shell(command, cli_env)

    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    name, day = FACTS["died"]
    assert record["status"] == "succeeded"
    assert record["final_answer"] == f"{name} died on {day}"
    assert record["total_input_tokens"] > 0 and record["total_cost_usd"] > 0
    assert record["links"]["dashboard"] == f"/executions/{record['id']}"


def test_a_session_keeps_variables_between_runs(cli_env, scripted):
    command = readme_command('rlm run samples/northern_tern_log.txt -q "Where did')
    scripted.responder = program_responder('anchorages = context.count("Came to anchor")\nFINAL("noted")')
    first = run_shell(command, cli_env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "noted"

    scripted.responder = program_responder("FINAL(str(anchorages + 1))")
    second = run_shell(command, cli_env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "5"

    with sqlite3.connect(embedded_db(cli_env)) as conn:
        sessions = conn.execute("SELECT id FROM sessions WHERE name = 'voyage'").fetchall()
        runs = conn.execute("SELECT count(*) FROM executions WHERE session_id = ?", sessions[0]).fetchone()
    assert len(sessions) == 1 and runs == (2,)


def test_a_failed_execution_exits_non_zero_with_the_reason(cli_env, scripted, tmp_path):
    def refuse(request):
        raise ScriptedError(401, "invalid api key")

    scripted.responder = refuse
    note = tmp_path / "note.txt"
    note.write_text("a short note")

    done = run_shell(f"rlm run {note} -q 'What does it say?'", cli_env)

    assert done.returncode == 1
    assert done.stdout == ""
    assert re.search(r"rlm: execution \w+ failed: .*invalid api key", done.stderr), done.stderr


def test_trace_prints_the_tree(cli_env, scripted):
    scripted.responder = ship_log_responder
    run = run_shell(readme_command("cat samples/northern_tern_log.txt | rlm run -"), cli_env)
    execution_id = json.loads(run.stdout)["id"]
    command = readme_command("rlm trace").replace("<execution id>", execution_id[:8])

    done = run_shell(command, {**cli_env, "COLUMNS": "200"})

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"execution {execution_id}" in out and "succeeded" in out
    assert out.count("llm_call") == 4
    assert "scripted-sub" in out and "iteration" in out and "code" in out
    assert "entries = context.split" in out  # the start of the code cell
    assert f"answer  {FACTS['died'][0]}" in out

    missing = run_shell("rlm trace ffffffffffff", cli_env)
    assert missing.returncode != 0 and "matches no execution" in missing.stderr


def test_trace_fits_80_columns_and_shows_programs_and_passages(cli_env, scripted):
    """At 80 columns every line fits; a strategy's code line shows its program, not the helpers'
    docstring; sub-call lines say which passage each read."""
    from rich.cells import cell_len

    def copy_the_sentence_asked_for(request):
        passage = str(request["messages"][-1]["content"]).split('"""', 1)[-1].strip()
        found = [s for s in passage.split(". ") if "anchor" in s]
        return found[0].strip() if found else "NONE"

    scripted.responder = copy_the_sentence_asked_for
    run = run_shell(
        'rlm run samples/northern_tern_log.txt -q "When did the ship come to anchor?" '
        "--strategy search --json",
        cli_env,
    )
    assert run.returncode == 0, run.stderr
    execution_id = json.loads(run.stdout)["id"]

    done = run_shell(f"rlm trace {execution_id[:8]}", {**cli_env, "COLUMNS": "80"})

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(cell_len(line) for line in lines) <= 80, "\n".join(lines)
    # Each node is a line of facts, then a line of what it did, both cut to the width.
    code = lines[next(i for i, line in enumerate(lines) if "code  succeeded" in line) + 1]
    assert "search: find the sentences" in code and "Helpers every" not in done.stdout
    # The paragraphs read (every word of the question is in the text: no call for related words).
    calls = [lines[i + 1] for i, line in enumerate(lines) if "llm_call" in line]
    passages = [line.split("#", 1)[1] for line in calls]
    assert len(passages) >= 2 and len(set(passages)) == len(passages), calls
    assert all(" chars " in line and "Question" not in line for line in calls), calls
    assert all(" · chars " in line for line in calls), calls  # located in the input


def test_an_embedded_run_whose_process_died_is_closed_on_the_next_start(tmp_path):
    """A killed `rlm run` leaves its execution running with a lapsed lease; the next start fails it."""
    from datetime import timedelta

    from rlm_api.cli.local_app import open_app
    from rlm_api.database import db
    from rlm_shared.models import Context, Execution
    from rlm_worker.engine.types import utcnow

    url = f"sqlite:///{tmp_path / 'orphans.db'}"
    app = open_app(url, quiet=True)
    with app.app_context():
        ctx = Context(sha256="0" * 64, kind="str", size_chars=1, content="x")
        db.session.add(ctx)
        db.session.flush()
        lapsed = Execution(
            context_id=ctx.id,
            user_query="q",
            root_model="m",
            sub_model="m",
            options={},
            status="running",
            lease_expires_at=utcnow() - timedelta(seconds=5),
        )
        live = Execution(
            context_id=ctx.id,
            user_query="q",
            root_model="m",
            sub_model="m",
            options={},
            status="running",
            lease_expires_at=utcnow() + timedelta(minutes=5),
        )
        db.session.add_all([lapsed, live])
        db.session.commit()
        lapsed_id, live_id = lapsed.id, live.id
    app = open_app(url, quiet=True)
    with app.app_context():
        assert db.session.get(Execution, lapsed_id).status == "failed"
        assert "exited" in db.session.get(Execution, lapsed_id).error
        assert db.session.get(Execution, live_id).status == "running"


def test_a_model_off_the_allow_list_is_one_line_and_exit_2(cli_env, scripted, tmp_path):
    """`--model`/`--sub-model` go through MODEL_ALLOWLIST before anything is stored (issue #17)."""
    note = tmp_path / "note.txt"
    note.write_text("a short note")

    done = run_shell(f"rlm run {note} -q 'What?' --sub-model deepinfra/x", cli_env)

    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert "--sub-model: the model 'deepinfra/x' is not allowed by MODEL_ALLOWLIST" in lines[-1], done.stderr
    assert "Traceback" not in done.stderr
    assert scripted.stats()["total_calls"] == 0
    allowed = run_shell(
        f"rlm run {note} -q 'What?' --sub-model deepinfra/x", {**cli_env, "MODEL_ALLOWLIST": "*"}
    )
    assert "no API key for deepinfra/x: set DEEPINFRA_API_KEY" in allowed.stderr and allowed.returncode == 2


def test_a_missing_key_is_named_before_anything_runs(cli_env, scripted, tmp_path):
    """#15: no key and no LLM_API_BASE for the model asked for: say which variable to set."""
    note = tmp_path / "note.txt"
    note.write_text("a short note")
    env = {k: v for k, v in cli_env.items() if k not in ("LLM_API_BASE", "OPENAI_API_KEY")}

    done = run_shell(f"rlm run {note} -q 'What?' --model openai/gpt-4o-mini", env)

    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .endswith("no API key for openai/gpt-4o-mini: set OPENAI_API_KEY, or LLM_API_BASE for a local server")
    ), done.stderr
    assert scripted.stats()["total_calls"] == 0


def test_the_sandbox_cap_holds_in_a_real_run_and_the_trace_says_so(cli_env, scripted, tmp_path):
    """MAX_SANDBOXES_PER_EXECUTION=1: the root program holds the only REPL, so each rlm_query child
    is answered by one plain llm_query on the sub-model, and its trace node says why (#17)."""
    note = tmp_path / "note.txt"
    note.write_text("a short note")
    program = tmp_path / "root.py"
    program.write_text("parts = rlm_query_batched(['a', 'b', 'c'])\nFINAL('|'.join(parts))\n")

    done = run_shell(
        f"rlm run {note} -q 'What?' --root-code {program}", {**cli_env, "MAX_SANDBOXES_PER_EXECUTION": "1"}
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "NONE|NONE|NONE"
    assert scripted.stats()["by_model"] == {"scripted-sub": 3}
    with sqlite3.connect(embedded_db(cli_env)) as conn:
        children = conn.execute("SELECT status, stdout FROM trace_nodes WHERE kind = 'child_rlm'").fetchall()
    assert len(children) == 3
    for status, stdout in children:
        assert status == "succeeded"
        assert "no sandbox slot free (1 sandboxes alive, MAX_SANDBOXES_PER_EXECUTION=1)" in stdout


def test_models_the_user_types_are_checked_as_a_laptop_user_would_expect(cli_env, scripted, tmp_path):
    """The bundled 135M model is refused as a root; an unknown local name is refused; a bad
    --sub-model is named (not the default root's missing key); the advice is what to set here."""
    note = tmp_path / "note.txt"
    note.write_text("a short note")
    no_key = {k: v for k, v in cli_env.items() if k not in ("LLM_API_BASE", "OPENAI_API_KEY", "LOCAL_MODEL_PATH")}
    no_key["DEFAULT_MODEL"] = "openai/gpt-4o-mini"

    def last_line(args: str, env: dict[str, str]) -> str:
        done = run_shell(f"rlm run {note} -q 'What?' {args}", env)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        return done.stderr.strip().splitlines()[-1]

    root = last_line("--model local/smollm2", cli_env)
    assert "--model: local/smollm2" in root and "cannot be a root model" in root and "--strategy" in root
    unknown = last_line("--sub-model local/nosuch", cli_env)
    assert "--sub-model: unknown local model 'local/nosuch'" in unknown
    named = last_line("--sub-model nosuch/thing", no_key)
    assert "--sub-model: the model 'nosuch/thing' is not allowed" in named, named
    assert "gpt-4o-mini" not in named.split("allows")[0]
    assert "ask the operator" not in named and "MODEL_ALLOWLIST='nosuch/thing," in named
    assert scripted.stats()["total_calls"] == 0


def test_a_session_over_another_input_is_not_silently_replaced(cli_env, scripted, tmp_path):
    """`--session NAME` on a session that reads another input is refused (#32: 69 characters
    silently became 33,300); `--replace-context` replaces it on purpose, memory kept."""
    scripted.responder = program_responder("FINAL(str(len(context)))")
    short = tmp_path / "short.txt"
    short.write_text("A short note about the voyage.")
    first = run_shell(f"rlm run {short} -q 'How long?' --session voyage", cli_env)
    assert first.returncode == 0 and first.stdout.strip() == "30", first.stderr

    refused = run_shell("rlm run samples/northern_tern_log.txt -q 'How long?' --session voyage", cli_env)
    assert refused.returncode == 2, refused.stderr
    message = refused.stderr.strip().splitlines()[-1]
    assert "session 'voyage' already reads another input (30 characters)" in message
    assert "--replace-context" in message

    again = run_shell(f"rlm run {short} -q 'How long?' --session voyage", cli_env)
    assert again.returncode == 0 and again.stdout.strip() == "30"  # the same input: reused
    replaced = run_shell(
        "rlm run samples/northern_tern_log.txt -q 'How long?' --session voyage --replace-context", cli_env
    )
    assert replaced.returncode == 0 and int(replaced.stdout) > 30_000, replaced.stderr
    with sqlite3.connect(embedded_db(cli_env)) as conn:
        assert conn.execute("SELECT count(*) FROM sessions WHERE name = 'voyage'").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM executions").fetchone() == (3,)
