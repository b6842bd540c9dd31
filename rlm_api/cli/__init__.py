"""The `rlm` command: run one execution on a laptop, or start the processes of a deployment.

Each subcommand lives in its own module and imports the heavy parts (Flask, SQLAlchemy,
litellm) only when it runs, so `rlm --help` is instant.
"""

from __future__ import annotations

import os

import click

from rlm_api.cli.database import db
from rlm_api.cli.environment import config
from rlm_api.cli.eval import eval_command
from rlm_api.cli.mcp import mcp
from rlm_api.cli.processes import flower, healthcheck, worker
from rlm_api.cli.run import run
from rlm_api.cli.serve import serve
from rlm_api.cli.trace import trace


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="rlm-engine", prog_name="rlm")
def main() -> None:
    """RLM Engine: answer questions about inputs far larger than a model's context window.

    \b
    Examples:
      rlm run report.txt -q "List every date mentioned"
      cat notes.txt | rlm run - -q "Summarise the open questions" --json
      rlm serve --port 8000
      rlm trace 3f2a9c
    """
    # litellm otherwise fetches its price map from the internet at first use, and hangs ~10 s
    # retrying on a machine without a route out.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


for command in (run, serve, trace, worker, flower, db, config, healthcheck, mcp, eval_command):
    main.add_command(command)
