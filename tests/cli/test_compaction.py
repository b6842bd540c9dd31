"""Compaction through `rlm run` (the runner, its settings, litellm over HTTP to a scripted model
whose window, ROOT_CONTEXT_WINDOW_TOKENS, is small) and how `rlm trace` shows it."""

from __future__ import annotations

import json

from tests.cli.readme import run_shell
from tests.support.scripted_model import user_text

SUMMARY_START = "Summarise"


def long_running_root(request):
    """A root that prints ~500 tokens a turn until its conversation is compacted, then answers from
    its variable (which counts the turns the summary replaced)."""
    messages = request["messages"]
    if messages[0]["role"] != "system":
        return "sub"
    if user_text(request).startswith("Your conversation is about to outgrow"):
        return "Summary: the steps so far are in `steps`."
    if any("was compacted" in str(m["content"]) for m in messages):
        return "```repl\nFINAL(str(len(steps)) + ' steps')\n```"
    return (
        "```repl\ntry:\n    steps\nexcept NameError:\n    steps = []\nsteps.append(1)\n"
        "print(' '.join(str(n) for n in range(1000, 1250)))\n```"
    )


def test_a_run_near_its_window_is_compacted_and_rlm_trace_shows_it(cli_env, scripted, tmp_path):
    scripted.responder = long_running_root
    note = tmp_path / "note.txt"
    note.write_text("a short note")
    env = {**cli_env, "ROOT_CONTEXT_WINDOW_TOKENS": "3000", "COLUMNS": "200"}

    done = run_shell(f"rlm run {note} -q 'How many steps?' --json", env)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "succeeded", record
    steps = int(record["final_answer"].split()[0])
    assert steps >= 2  # the turns that were summarised away still count

    trace = run_shell(f"rlm trace {record['id'][:8]}", env)
    assert trace.returncode == 0, trace.stderr
    lines = trace.stdout.splitlines()
    (at,) = [i for i, line in enumerate(lines) if "── compaction " in line]
    assert "openai/scripted-root" in lines[at] and "succeeded" in lines[at] and " tok" in lines[at]
    assert "Summary: the steps so far are in `steps`." in lines[at + 1]  # the summary, on the next line
    assert "compaction_history.extend(<the " in trace.stdout  # the cell that kept the turns
