"""A real API serving `/mcp`: gunicorn (as deployed) or `rlm serve`, over a Postgres database of
its own, embedded dispatch, two tokens, an allow-list and a files root, against the scripted model."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.cli.conftest import PRICES, cli_env, free_port  # noqa: F401 - cli_env: `rlm mcp` runs in a reader's shell
from tests.conftest import TEST_SECRET
from tests.support.services import ROOT, migrated_database, wait_for

ALICE, BOB = "tok-alice-mcp-5e1d0c7a", "tok-bob-mcp-93b2f4e6"
OUTSIDE_SECRET = "The vault code is 4417."


def files_root(base: Path) -> Path:
    """A files root with a report, a folder, and three ways out: `..`, an absolute path, a link."""
    root = base / "shared"
    (root / "reports").mkdir(parents=True)
    (root / "report.txt").write_text("Quarterly report. The ship came to anchor in Table Bay.\n")
    (root / "reports" / "a.txt").write_text("Report A: revenue rose.\n")
    (root / "reports" / "b.md").write_text("# Report B\nCosts fell.\n")
    (base / "secret.txt").write_text(OUTSIDE_SECRET + "\n")
    (root / "escape.txt").symlink_to(base / "secret.txt")
    (root / "outside").symlink_to(base, target_is_directory=True)
    return root


def server_env(database_url: str, model_url: str, root: Path, port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        "DATABASE_URL": database_url,
        "DISPATCH": "embedded",
        "LLM_API_BASE": model_url,
        "LLM_API_KEY": "scripted",
        "DEFAULT_MODEL": "openai/scripted-root",
        "SUB_MODEL": "openai/scripted-sub",
        "MODEL_ALLOWLIST": "openai/scripted-*",
        "MODEL_PRICES": PRICES,
        "OPENAI_API_KEY": TEST_SECRET,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "API_TOKENS": f"{ALICE},{BOB}",
        "API_RATE_LIMIT": "1000/minute",
        "SECRET_KEY": "mcp-tests-secret",
        "MCP_FILES_ROOT": str(root),
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
    }
    env.pop("XDG_DATA_HOME", None)
    return env


class Served:
    def __init__(self, kind: str, port: int, root: Path) -> None:
        self.kind, self.port, self.root = kind, port, root
        self.secret = root.parent / "secret.txt"
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/mcp"


@pytest.fixture(scope="module", params=["gunicorn", "rlm serve"])
def served(request, model_server, tmp_path_factory):
    """The API as deployed (`gunicorn -c gunicorn.conf.py`, Procfile's `web`) or as `rlm serve`."""
    base = tmp_path_factory.mktemp("mcp")
    root = files_root(base)
    port = free_port()
    command = (
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "rlm_api:create_app()"]
        if request.param == "gunicorn"
        else [sys.executable, "-m", "rlm_api.cli", "serve", "--port", str(port)]
    )
    with migrated_database("rlm_mcp") as url:
        log = open(base / "server.log", "w+")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=server_env(url, model_server.url, root, port),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def up() -> bool:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{request.param} exited: {log.read()[-3000:]}")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                return r.status in (200, 503)

        try:
            wait_for(up, 60, interval=0.1, what=request.param)
            yield Served(request.param, port, root)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            log.seek(0)
            tail = log.read()[-2000:]
            log.close()
            if "Traceback" in tail:
                print(tail)
