"""`rlm eval` end to end against the scripted model: real subprocess, real SQLite, the real
engine and sandbox. The scripted model's answers are known, so the scores are exact."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.evals.scripts import EXPECTED, scores


def rlm_eval(env: dict[str, str], *args: str, out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "rlm_api.cli", "eval", "--suite", "tiny", "--out", str(out), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)


def tiny_args(program: Path) -> list[str]:
    return ["--root-code", str(program), "--label", "root program", "--window-tokens", "1000"]


def test_tiny_suite_report_scores_and_links(cli_env, finder, chunk_program, tmp_path):
    done = rlm_eval(cli_env, *tiny_args(chunk_program), out=tmp_path / "out")

    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert scores(report) == EXPECTED
    row = next(r for r in report["rows"] if r["config"] == "root program" and r["task"] == "multi_needle")
    assert row["size"] == 6000 and row["items"] == 1 and row["failures"] == 0
    assert row["sub_calls"] == 3 and row["depth"] == 1 and row["cost_usd"] > 0 and row["seconds"] > 0
    assert row["input_tokens"] > 1000
    base = next(r for r in report["rows"] if r["baseline"] and r["task"] == "multi_needle")
    assert base["sub_calls"] == 1 and base["input_tokens"] < row["input_tokens"]
    # Every item is an execution in the embedded database, linked to its trace page.
    assert len(report["items"]) == 8
    with sqlite3.connect(Path(cli_env["XDG_DATA_HOME"]) / "rlm-engine" / "rlm.db") as conn:
        statuses = dict(conn.execute("SELECT id, status FROM executions").fetchall())
        eval_rows = conn.execute("SELECT count(*), min(score) FROM eval_items").fetchone()
    for item in report["items"]:
        assert statuses[item["execution_id"]] == "succeeded"
        assert item["links"]["trace"] == f"/executions/{item['execution_id']}"
    assert eval_rows[0] == 8
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| multi_needle | 6,000 | root program | 1.00 | 0.50 |" in markdown
    assert f"(http://127.0.0.1:8000/executions/{report['items'][0]['execution_id']})" in markdown
    assert markdown in done.stdout
    svg = (tmp_path / "out" / "plot.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "multi_needle" in svg and "root program" in svg
    assert (tmp_path / "out" / "plot.png").read_bytes().startswith(b"\x89PNG")


def test_same_seed_same_items_and_the_cache_makes_a_rerun_free(cli_env, finder, chunk_program, tmp_path):
    first = rlm_eval(cli_env, *tiny_args(chunk_program), "--cache", "--seed", "3", out=tmp_path / "a")
    assert first.returncode == 0, first.stderr
    calls = finder.stats()["total_calls"]
    assert calls == 14  # chunks of 3,000: 3 + 3 (the needle items, over 6,000) + 2 + 2, and 4 baselines
    finder.reset()

    second = rlm_eval(cli_env, *tiny_args(chunk_program), "--cache", "--seed", "3", out=tmp_path / "b")

    assert second.returncode == 0, second.stderr
    assert finder.stats()["total_calls"] == 0  # every prompt was asked before: no model call
    a = json.loads((tmp_path / "a" / "report.json").read_text())
    b = json.loads((tmp_path / "b" / "report.json").read_text())
    assert [i["fingerprint"] for i in a["items"]] == [i["fingerprint"] for i in b["items"]]
    assert [i["answer"] for i in a["items"]] == [i["answer"] for i in b["items"]]
    assert a["cache"]["saved_usd"] == 0
    spent = sum(i["cost_usd"] for i in a["items"])
    assert b["cache"]["saved_usd"] == round(spent, 6) and spent > 0
    assert sum(i["cost_usd"] for i in b["items"]) == 0
    assert "saved in this run" in (tmp_path / "b" / "report.md").read_text()

    other = rlm_eval(cli_env, *tiny_args(chunk_program), "--no-baseline", "--seed", "4", out=tmp_path / "c")
    assert other.returncode == 0, other.stderr
    c = json.loads((tmp_path / "c" / "report.json").read_text())
    assert not {i["fingerprint"] for i in c["items"]} & {i["fingerprint"] for i in a["items"]}


def test_bad_usage_is_one_line_and_exit_2(cli_env, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "question": "q", "answers": []}\n')
    done = rlm_eval(cli_env, "--tasks-file", str(bad), out=tmp_path / "o")
    assert done.returncode == 2
    assert "bad.jsonl:1: line: Value error, give exactly one of input and input_file" in done.stderr
    done = rlm_eval(cli_env, "--sizes", "12x", out=tmp_path / "o")
    assert done.returncode == 2 and "'12x' is not a size" in done.stderr


def test_server_mode_runs_the_eval_on_a_deployment(served, cli_env, finder, chunk_program, tmp_path):
    tasks = tmp_path / "mine.jsonl"
    tasks.write_text(
        json.dumps(
            {
                "id": "own",
                "input": "x " * 500 + "The secret access code for Glenholt is QQ-1234.",
                "question": "Code?",
                "answers": ["QQ-1234"],
            }
        )
        + "\n"
    )
    server = f"http://127.0.0.1:{served}"

    done = rlm_eval(
        cli_env,
        *tiny_args(chunk_program),
        "--tasks-file",
        str(tasks),
        "--server",
        server,
        out=tmp_path / "remote",
    )

    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "remote" / "report.json").read_text())
    assert {k: v for k, v in scores(report).items() if k[1] != "user"} == EXPECTED
    assert scores(report)[("root program", "user")] == 1.0  # the task file, sent inline
    assert f"{server}/evals/{report['eval_id']}" in done.stderr
    assert (
        f"({server}/executions/{report['items'][0]['execution_id']})"
        in (tmp_path / "remote" / "report.md").read_text()
    )
