"""`rlm run`'s outcomes beyond an answer: "no answer found" has its own sentence and exit code, and
a failing sub-call fails the execution with its reason (it is never read as "not in the text")."""

from __future__ import annotations

import json
import re
import sqlite3

from rlm_api.cli.run import EXIT_FAILED, EXIT_NOT_FOUND
from tests.cli.readme import run_shell
from tests.cli.scripts import program_responder
from tests.cli.test_run import embedded_db
from tests.support.scripted_model import ScriptedError

NOT_FOUND = re.compile(r"rlm: no answer found: the input does not seem to answer this question")


def test_no_answer_found_is_a_sentence_on_stderr_and_its_own_exit_code(cli_env, scripted):
    scripted.responder = program_responder('FINAL("NONE")')

    done = run_shell('rlm run samples/northern_tern_log.txt -q "Who owned the ship?"', cli_env)

    assert done.returncode == EXIT_NOT_FOUND == 3, done.stderr
    assert done.stdout == ""
    assert NOT_FOUND.search(done.stderr), done.stderr
    with sqlite3.connect(embedded_db(cli_env)) as conn:
        assert conn.execute("SELECT status, answer_found FROM executions").fetchall() == [("succeeded", 0)]


def test_json_says_whether_an_answer_was_found(cli_env, scripted):
    scripted.responder = program_responder('FINAL("NONE")')
    done = run_shell('rlm run samples/northern_tern_log.txt -q "Who owned the ship?" --json', cli_env)
    assert done.returncode == EXIT_NOT_FOUND, done.stderr
    record = json.loads(done.stdout)
    assert (record["status"], record["final_answer"], record["answer_found"]) == ("succeeded", "NONE", False)

    scripted.responder = program_responder('FINAL("Seaman John Pellow")')
    done = run_shell('rlm run samples/northern_tern_log.txt -q "Who was killed?" --json', cli_env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["answer_found"] is True
    assert not NOT_FOUND.search(done.stderr)


def test_a_failing_sub_model_fails_a_strategy_with_the_reason(cli_env, scripted):
    def refuse(request):
        raise ScriptedError(404, "The model `nosuch-thing` does not exist")

    scripted.responder = refuse
    command = (
        'rlm run samples/northern_tern_log.txt -q "Who died on the voyage?" '
        "--strategy search --sub-model openai/nosuch-thing"
    )

    done = run_shell(command, cli_env)

    assert done.returncode == EXIT_FAILED, done.stderr
    assert done.stdout == ""
    assert re.search(
        r"rlm: execution \w+ failed: the strategy search program ended without FINAL: "
        r"RuntimeError: a sub-call failed: .*nosuch-thing",
        done.stderr,
    ), done.stderr
    with sqlite3.connect(embedded_db(cli_env)) as conn:
        assert conn.execute("SELECT status, answer_found FROM executions").fetchall() == [("failed", None)]
