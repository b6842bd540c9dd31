"""`rlm run --max-concurrent-subcalls`: embedded mode (the in-process dispatcher) holds the limit,
measured by the scripted model's count of requests in flight at once."""

from __future__ import annotations

from tests.cli.readme import run_shell

FAN_OUT = "answers = llm_query_batched([f'question {i}' for i in range(20)])\nFINAL(str(len(answers)))\n"


def test_embedded_run_keeps_twenty_sub_calls_to_three_at_once(cli_env, scripted, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("a short note")
    program = tmp_path / "root.py"
    program.write_text(FAN_OUT)
    scripted.responder = lambda request: "leaf"
    scripted.latency = 0.3

    done = run_shell(f"rlm run {note} -q 'What?' --root-code {program} --max-concurrent-subcalls 3", cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "20"
    stats = scripted.stats()
    assert stats["total_calls"] == 20 and stats["peak_concurrency"] == 3, stats

    scripted.reset()
    done = run_shell(f"rlm run {note} -q 'What?' --root-code {program}", cli_env)
    assert done.returncode == 0, done.stderr
    assert scripted.stats()["peak_concurrency"] > 3  # unlimited, the same fan-out overlaps more


def test_a_limit_over_the_ceiling_is_a_usage_error(cli_env, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("a short note")
    done = run_shell(
        f"rlm run {note} -q 'What?' --max-concurrent-subcalls 9",
        {**cli_env, "MAX_CONCURRENT_SUBCALLS_CEILING": "8"},
    )
    assert done.returncode == 2
    assert "--max-concurrent-subcalls: max_concurrent_subcalls may be at most 8" in done.stderr
