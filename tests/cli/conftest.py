"""Fixtures of the `rlm` command tests: a private data folder and the scripted model in the env."""

from __future__ import annotations

import socket

import pytest

from tests.cli.readme import tool_env
from tests.conftest import TEST_SECRET

PRICES = (
    '{"openai/scripted-root": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},'
    ' "openai/scripted-sub": {"input_cost_per_token": 1e-07, "output_cost_per_token": 4e-07}}'
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def cli_env(tmp_path, scripted) -> dict[str, str]:
    """A reader's shell: nothing set but the model endpoint, and a fresh user data folder."""
    env = tool_env(
        {
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "LLM_API_BASE": scripted.url,
            "LLM_API_KEY": "scripted",
            "DEFAULT_MODEL": "openai/scripted-root",
            "SUB_MODEL": "openai/scripted-sub",
            "MODEL_PRICES": PRICES,
            "OPENAI_API_KEY": TEST_SECRET,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
    )
    for name in ("DATABASE_URL", "DISPATCH", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "API_TOKENS"):
        env.pop(name, None)
    return env
