"""`rlm run` without a root model: `--root-code FILE`, `--strategy`, and the offline default (no
provider configured: the real bundled local model and the `search` strategy)."""

from __future__ import annotations

import json
import re
import sqlite3

from samples.make_ship_log import FACTS
from tests.cli.readme import readme_command, run_shell, tool_env
from tests.cli.scripts import ship_log_responder
from tests.cli.test_run import embedded_db
from tests.support.scripted_model import user_text

KILLED = re.compile(r"Seaman [A-Z]\w+ [A-Z]\w+ fell [^.]*")
PROVIDER_VARIABLES = re.compile(r"_API_KEY$|_API_BASE$|^(DEFAULT_MODEL|SUB_MODEL|LOCAL_MODEL_PATH)$")


def execution_rows(env: dict[str, str]) -> list[tuple[str, str, dict]]:
    with sqlite3.connect(embedded_db(env)) as conn:
        rows = conn.execute("SELECT root_model, sub_model, options FROM executions").fetchall()
    return [(root, sub, json.loads(options)) for root, sub, options in rows]


def test_root_code_file_runs_instead_of_a_root_model(cli_env, scripted):
    scripted.responder = ship_log_responder
    command = readme_command(
        'rlm run samples/northern_tern_log.txt -q "Which ports did the ship anchor at?" --root-code'
    )

    done = run_shell(command, cli_env)

    assert done.returncode == 0, done.stderr
    for port, day in FACTS["arrivals"].items():
        assert port in done.stdout and day in done.stdout, done.stdout
    assert "[rlm] root_code: no root model; sub-calls to openai/scripted-sub" in done.stderr
    assert scripted.stats()["by_model"] == {"scripted-sub": 1}  # the root model was never called
    ((root, sub, options),) = execution_rows(cli_env)
    assert (root, sub) == ("(root_code)", "openai/scripted-sub")
    assert options["root_code"].startswith('"""A root program') and options["strategy"] is None


def test_strategy_find_keeps_the_answer_its_chunk_backs(cli_env, scripted):
    def responder(request):
        found = KILLED.search(user_text(request))
        return found.group(0) + "." if found else "NONE"

    scripted.responder = responder
    done = run_shell(
        readme_command('rlm run samples/northern_tern_log.txt -q "Which seaman was killed?"'), cli_env
    )

    assert done.returncode == 0, done.stderr
    name, _ = FACTS["died"]
    assert name in done.stdout, done.stdout
    assert "[rlm] strategy find: no root model; sub-calls to openai/scripted-sub" in done.stderr
    assert "no model provider is configured" not in done.stderr  # a provider is: no offline notice
    assert set(scripted.stats()["by_model"]) == {"scripted-sub"}
    ((root, _, options),) = execution_rows(cli_env)
    assert root == "(strategy find)" and options["strategy"] == "find"


def test_a_bad_root_code_file_is_a_usage_error(cli_env, tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("  \n")
    done = run_shell(f"rlm run samples/northern_tern_log.txt -q x --root-code {empty}", cli_env)
    assert done.returncode == 2 and "the --root-code file is empty" in done.stderr
    done = run_shell("rlm run samples/northern_tern_log.txt -q x --strategy guess", cli_env)
    assert done.returncode == 2 and "guess" in done.stderr


def test_with_no_provider_the_quick_start_runs_offline_on_the_local_model(tmp_path):
    env = tool_env({"XDG_DATA_HOME": str(tmp_path / "data")})
    for name in [n for n in env if PROVIDER_VARIABLES.search(n)]:
        del env[name]
    for name in (
        "DATABASE_URL",
        "DISPATCH",
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "DEFAULT_CHUNK_SIZE",
    ):
        env.pop(name, None)
    command = readme_command("rlm run samples/devils_dictionary_a_b.txt")

    done = run_shell(command, env, timeout=300)

    assert done.returncode == 0, done.stderr
    assert "1881" in done.stdout, (done.stdout, done.stderr)
    assert done.stderr.count("rlm: no model provider is configured") == 1, done.stderr
    assert "[rlm] strategy search: no root model; sub-calls to local/smollm2" in done.stderr
    ((root, sub, options),) = execution_rows(env)
    assert (root, sub) == ("(strategy search)", "local/smollm2")
    assert options["strategy"] == "search" and options["chunk_size"] == 1000
    with sqlite3.connect(embedded_db(env)) as conn:
        assert conn.execute("SELECT offline FROM executions").fetchall() == [(1,)]  # the record says so
