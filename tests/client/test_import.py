"""`import rlm_client` stays light: no Flask, Celery, SQLAlchemy or litellm (a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("flask", "celery", "sqlalchemy", "litellm", "rlm_api", "rlm_worker")


def test_import_does_not_load_the_server_or_the_engine():
    code = (
        "import json, sys, rlm_client\n"
        "from rlm_client import RLM, AsyncRLMClient, RLMClient\n"
        "RLM(backend='openai', backend_kwargs={'model_name': 'gpt-4o-mini'}, base_url='http://127.0.0.1:9')\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == []
