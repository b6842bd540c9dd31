"""Progress tells the truth: a batch's size is the total from the moment it is sent, tokens and cost
grow as its calls finish, and the offline notice names the strategy that runs."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from rlm_api.cli.run import plan_run
from rlm_shared.config import Settings
from tests.cli.readme import ROOT
from tests.support.scripted_model import user_text

PROGRESS = re.compile(
    r"\[rlm\] (\w+) · iteration \d+ · sub-calls (\d+)/(\d+) · tokens ([\d,]+) in / ([\d,]+) out · \$([\d.]+)"
)
PROGRAM = 'FINAL("\\n".join(llm_query_batched(["now 1", "now 2", "later 1", "later 2"])))\n'


def later_ones_wait(request: dict) -> str:
    """ "now" prompts answer at once; "later" ones after 3 s, so the batch is seen half done."""
    if user_text(request).startswith("later"):
        time.sleep(3)
    return "an answer of several words"


def test_the_batch_total_is_known_when_sent_and_tokens_grow_call_by_call(cli_env, scripted, tmp_path):
    scripted.responder = later_ones_wait
    program = tmp_path / "root.py"
    program.write_text(PROGRAM)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlm_api.cli",
            "run",
            "samples/northern_tern_log.txt",
            "-q",
            "Q",
            "--root-code",
            str(program),
        ],
        cwd=ROOT,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = [
        (s, int(d), int(t), int(i.replace(",", "")), float(c))
        for s, d, t, i, _, c in PROGRESS.findall(done.stderr)
    ]
    assert {total for _, _, total, _, _ in lines} <= {0, 4}, lines  # never 0/1, 0/2, 2/3 …
    halfway = [line for line in lines if line[0] == "running" and line[1] == 2]
    assert halfway and halfway[0][3] > 0, lines  # the two answered calls' tokens, before the end
    final = lines[-1]
    assert final[:3] == ("succeeded", 4, 4) and final[3] > halfway[0][3]


def test_the_offline_notice_names_the_strategy_that_runs(monkeypatch):
    for name in ("OPENAI_API_KEY", "LLM_API_BASE", "DEFAULT_MODEL", "SUB_MODEL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert "`find` strategy" in plan_run(settings, None, None, "find", None).notice
    default = plan_run(settings, None, None, None, None)
    assert f"`{default.options['strategy']}` strategy" in default.notice
