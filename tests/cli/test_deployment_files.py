"""docker-compose.yml, Dockerfile, Procfile, render.yaml and .env.example agree with each other and
with the code: every service and process, its command (parsed by the real `rlm` command line),
healthchecks, restart policies, and every variable they mention."""

from __future__ import annotations

import re
import shlex

import click
import yaml

from rlm_api.cli import main as rlm_main
from rlm_api.cli.environment import all_variables, env_example
from tests.cli.readme import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
#: The default stack; optional profiles (`monitoring`) are checked in tests/metrics/.
SERVICES = {name: s for name, s in COMPOSE["services"].items() if "profiles" not in s}
VARIABLES = {v.name for v in all_variables()}
REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)")
LONG_RUNNING = ("postgres", "redis", "web", "root", "llm", "flower")


def parse_rlm(argv: list[str]) -> click.Context:
    """Parse `rlm ...` exactly as the console script would, without running it."""
    assert argv[0] == "rlm", argv
    command: click.Command = rlm_main
    args = argv[1:]
    while isinstance(command, click.Group):
        found = command.get_command(click.Context(command), args[0])
        assert found is not None, f"no command {args[0]!r} in {argv}"
        command, args = found, args[1:]
    return command.make_context(command.name, args)


def command_of(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    return command if isinstance(command, list) else shlex.split(command)


def test_compose_has_every_process_with_healthchecks_and_restart_policies():
    assert set(SERVICES) == {"postgres", "redis", "migrate", "web", "root", "llm", "flower"}
    for name in LONG_RUNNING:
        service = SERVICES[name]
        assert service["restart"] == "unless-stopped", name
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    # The one-shot migration retries until the database is up; the app waits for it to succeed.
    assert SERVICES["migrate"]["restart"] == "on-failure"
    assert command_of("migrate") == ["rlm", "db", "upgrade"]
    for name in ("web", "root", "llm", "flower"):
        deps = SERVICES[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["postgres"]["condition"] == deps["redis"]["condition"] == "service_healthy"


def test_compose_commands_parse_with_the_real_cli():
    assert parse_rlm(command_of("root")).params["queue"] == "root"
    llm = parse_rlm(command_of("llm"))
    assert llm.params["queue"] == "llm"
    assert SERVICES["llm"]["environment"]["LLM_CONCURRENCY"] == "${LLM_CONCURRENCY:-32}"
    assert parse_rlm(command_of("flower")).params["port"] == 5555
    assert command_of("web")[:3] == ["gunicorn", "-c", "gunicorn.conf.py"]
    for name in ("web", "flower"):
        probe = SERVICES[name]["healthcheck"]["test"][1:]
        assert parse_rlm(probe).params["url"].startswith("http://127.0.0.1:")


def test_flower_is_never_published_without_auth():
    flower = SERVICES["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert flower["ports"] == ["${FLOWER_PUBLISH:-127.0.0.1:5555}:5555"]
    assert "ports" not in SERVICES["redis"] and "ports" not in SERVICES["postgres"]


def test_every_variable_mentioned_is_documented():
    text = (ROOT / "docker-compose.yml").read_text()
    mentioned = set(REFERENCE.findall(text))
    for service in COMPOSE["services"].values():
        mentioned |= set(service.get("environment", {}))
    mentioned -= {"POSTGRES_USER", "POSTGRES_DB"}  # the postgres image's own settings
    mentioned = {name for name in mentioned if not name.startswith("GF_")}  # Grafana's own
    assert mentioned <= VARIABLES, mentioned - VARIABLES

    example = (ROOT / ".env.example").read_text()
    assert example == env_example() + "\n", "regenerate: rlm config --env-example > .env.example"
    listed = set(re.findall(r"^# ([A-Z][A-Z0-9_]*)=", example, re.M))
    assert listed == VARIABLES, listed ^ VARIABLES


def test_procfile_and_render_run_the_same_processes():
    lines = (ROOT / "Procfile").read_text().splitlines()
    procs = dict(line.split(": ", 1) for line in lines if line.strip())
    assert procs["web"] == " ".join(shlex.quote(a) for a in command_of("web"))
    for name in ("root", "llm"):
        assert shlex.split(procs[name]) == command_of(name)
    assert shlex.split(procs["release"]) == command_of("migrate")
    for name in ("release", "root", "llm", "flower"):
        parse_rlm(shlex.split(procs[name]))

    render = yaml.safe_load((ROOT / "render.yaml").read_text())
    services = {s["name"]: s for s in render["services"]}
    assert services["rlm-web"]["preDeployCommand"] == procs["release"]
    assert services["rlm-root"]["dockerCommand"] == procs["root"]
    assert services["rlm-llm"]["dockerCommand"] == procs["llm"]
    assert services["rlm-flower"]["dockerCommand"] == procs["flower"]
    flower_env = {e.get("key"): e for e in services["rlm-flower"]["envVars"]}
    assert flower_env["FLOWER_BASIC_AUTH"] == {"key": "FLOWER_BASIC_AUTH", "sync": False}
    # Render builds the Dockerfile, so it runs the lock's versions too.
    assert {s["runtime"] for s in render["services"] if "runtime" in s} == {"docker"}
    keys = {e["key"] for s in render["services"] for e in s.get("envVars", []) if "key" in e}
    keys |= {e["key"] for g in render["envVarGroups"] for e in g["envVars"]}
    assert keys <= VARIABLES, keys - VARIABLES


def test_dockerfile_is_slim_non_root_and_caches_dependencies():
    text = (ROOT / "Dockerfile").read_text()
    instructions = [line.split()[0] for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert text.startswith("# ") and "FROM python:3.11-slim" in text
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    # pyproject.toml and the lock alone are copied and installed before the source, so code edits
    # keep that layer; the lock constrains every version.
    first_copy = text.index("COPY pyproject.toml requirements.lock ./")
    assert first_copy < text.index("pip install -c requirements.lock -r") < text.index("COPY . .")
    assert instructions.count("FROM") == 1
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".env", "tests/artifacts"} <= set(ignored)
