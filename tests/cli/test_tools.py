"""Custom tools in embedded mode: `rlm run` loads RLM_TOOLS in its own process and the REPL calls them."""

from __future__ import annotations

import hashlib

from tests.cli.readme import ROOT, run_shell


def test_rlm_run_offers_the_operators_tools(cli_env, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("a short note")
    program = tmp_path / "root.py"
    program.write_text("FINAL(checksum(context, algorithm='sha1'))\n")
    # the operator's module must be importable by the `rlm` process: installed, or on PYTHONPATH
    env = {**cli_env, "RLM_TOOLS": "samples.tools:checksum", "PYTHONPATH": str(ROOT)}

    done = run_shell(f"rlm run {note} -q 'Its checksum?' --root-code {program}", env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == hashlib.sha1(b"a short note").hexdigest()

    broken = run_shell(
        f"rlm run {note} -q 'Its checksum?' --root-code {program}", {**env, "RLM_TOOLS": "nope:f"}
    )
    assert broken.returncode == 1
    assert "RLM_TOOLS entry 'nope:f': cannot import nope" in broken.stderr


def test_rlm_serve_with_tools_that_cannot_load_stops_before_serving(cli_env):
    done = run_shell(
        "rlm serve --port 1",
        {**cli_env, "RLM_TOOLS": "samples.tools:checksum,x=os:nothing", "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert done.returncode == 1
    assert "custom tools: RLM_TOOLS entry 'x=os:nothing': os has no nothing" in done.stderr
