"""The README cannot rot: its configuration table is generated from Settings, and every command in
it is run by a test, run by `.ci/run`, or (Docker, absent from CI) checked against the compose file."""

from __future__ import annotations

import re

import yaml
from click.testing import CliRunner

from bench.lockfile import REFRESH_COMMAND
from rlm_api.cli import main as rlm_main
from rlm_api.cli.environment import all_variables, markdown_table
from rlm_shared.config import Settings
from tests.cli.readme import ROOT, command_parts, readme_command, readme_commands, run_shell, tool_env

README = (ROOT / "README.md").read_text(encoding="utf-8")
CI_RUN = (ROOT / ".ci" / "run").read_text()
PLANNED_DOCS = {"docs/api.md", "docs/security.md"}
FETCHED = re.compile(r"""readme_command\(\s*(['"])(.+?)\1\s*\)""")


def prefixes_run_by_tests() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "tests" / "cli").glob("test_*.py"):
        found |= {m.group(2).replace('\\"', '"') for m in FETCHED.finditer(path.read_text())}
    return found


def test_configuration_table_is_the_settings():
    table = README.split("<!-- config-table:start -->\n", 1)[1].split("<!-- config-table:end -->", 1)[0]
    assert table.strip() == markdown_table(), "regenerate: rlm config --markdown (between the markers)"
    names = re.findall(r"^\| `([A-Z0-9_]+)` \|", table, re.M)
    assert {n.lower() for n in names} >= set(Settings.model_fields)
    assert len(names) == len(set(names)) == len(all_variables())
    result = CliRunner().invoke(rlm_main, ["config", "--markdown"])
    assert result.exit_code == 0 and result.output.strip() == table.strip()


def test_quick_start_is_one_command_and_tests_are_another():
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```bash\n(.*?)^```", quick, re.S | re.M)
    assert len(blocks) == 2 and all(len(readme_commands(f"```bash\n{b}```")) == 1 for b in blocks)
    assert blocks[1].strip() == "python3 -m pytest -q"
    assert blocks[1].strip() in CI_RUN.splitlines()


def test_quick_start_installs_the_lock_into_a_new_environment():
    (quick,) = [c for c in readme_commands() if c.startswith("python3 -m venv ")]
    install = "pip install -q --no-deps -r requirements.lock -e ."
    assert command_parts(quick)[:3] == ["python3 -m venv .venv", "source .venv/bin/activate", install]
    # .ci/run removes .venv first, then runs these very lines (checked below), so CI tests the lock.
    assert CI_RUN.index("rm -rf .venv") < CI_RUN.index("\npython3 -m venv .venv\n")


def test_development_commands_refresh_the_lock_and_check_upgrades():
    # The refresh command is the lock's own header (tests/test_lock_file.py checks that side).
    assert readme_command("uv pip compile") == REFRESH_COMMAND
    done = run_shell(readme_command("python -m bench.upgrade_check") + " --help", tool_env({}), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout and "requirements.lock" in done.stdout


def test_every_readme_command_is_run_or_checked():
    prefixes = prefixes_run_by_tests()
    services = set(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"])
    ci_lines = {line.strip() for line in CI_RUN.splitlines()}
    unchecked = []
    for command in readme_commands():
        for part in command_parts(command):
            if part in ci_lines or any(part == p or part.startswith(p) for p in prefixes):
                continue
            if part == "cp .env.example .env" and (ROOT / ".env.example").is_file():
                continue
            if part.startswith("docker compose "):
                # No Docker engine on CI: the compose file itself is tested in test_deployment_files.
                words = part.split()
                assert words[2] in {"up", "ps", "logs", "down", "config"}, part
                assert not set(words[3:]) - {"-d", "--build"} - services, part
                continue
            unchecked.append(part)
    assert not unchecked, f"README commands no test runs: {unchecked}"


def test_every_test_fetched_command_is_in_the_readme():
    parts = [p for c in readme_commands() for p in command_parts(c)]
    for prefix in prefixes_run_by_tests():
        assert sum(p == prefix or p.startswith(prefix) for p in parts) >= 1, prefix


def test_every_command_has_help_with_examples():
    runner = CliRunner()
    names = ["run", "serve", "trace", "worker", "flower", "config", "healthcheck", "db upgrade", "eval"]
    for name in names:
        result = runner.invoke(rlm_main, [*name.split(), "--help"])
        assert result.exit_code == 0, name
        assert "Examples:" in result.output and f"rlm {name}" in result.output, name


def test_readme_links_point_at_files():
    for target in re.findall(r"\]\(((?!https?:|#)[^)]+)\)", README):
        # docs/api.md and docs/security.md are written by other parts of the project.
        assert (ROOT / target).exists() or target in PLANNED_DOCS, target
