"""The README's shell commands, so tests can run exactly what a reader will type.

Commands come from ```bash blocks; a trailing backslash joins lines, `#` starts a comment.
A test fetches the command it runs with `readme_command(prefix)`; `test_readme.py` checks that
every README command is fetched by some test, run by `.ci/run`, or otherwise validated.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
_BLOCK = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.S | re.M)


def readme_commands(text: str | None = None) -> list[str]:
    text = README.read_text(encoding="utf-8") if text is None else text
    commands: list[str] = []
    for block in _BLOCK.findall(text):
        pending = ""
        for raw in block.splitlines():
            line = raw.rstrip()
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                pending += line[:-1].rstrip() + " "
                continue
            commands.append(" ".join((pending + line).split()) if pending else line.strip())
            pending = ""
    return commands


def readme_command(prefix: str) -> str:
    """The one README command (or `&&`-joined part of one) that starts with `prefix`."""
    parts = [part for c in readme_commands() for part in command_parts(c)]
    if prefix in parts:
        return prefix
    found = [part for part in parts if part.startswith(prefix)]
    assert len(found) == 1, f"README commands starting with {prefix!r}: {found}"
    return found[0]


def command_parts(command: str) -> list[str]:
    return [p.strip() for p in command.split(" && ")]


def tool_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment a reader's shell has after install: `rlm` and `celery` on PATH."""
    env = {**os.environ, **extra}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def run_shell(
    command: str, env: dict[str, str], timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
