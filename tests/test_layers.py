"""The layering at run time: a Celery worker process builds no Flask app and imports no web code.

pyproject.toml's import contracts (`lint-imports`, run by .ci/run) check the imports statically;
this checks what a real worker process loads: its Celery app, its tasks, and the warm-up that
imports the model library, against the test Postgres and Redis.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.services import REDIS_HOST, REDIS_PORT, ROOT, create_database

WORKER_PROCESS = """
import sys
from rlm_worker.celery_app import worker_celery
from rlm_shared.database import database
from rlm_shared.models import Execution
import sqlalchemy as sa
app = worker_celery()
app.loader.import_default_modules()  # rlm_worker.tasks, as `celery worker` imports it
import rlm_worker.tasks
rlm_worker.tasks._warm_up()
with database.engine.connect() as conn:  # the worker's own engine, on the shared models
    conn.execute(sa.select(sa.func.count()).select_from(Execution)).scalar_one()
print(sorted({m.split(".")[0] for m in sys.modules} & {"flask", "flask_sqlalchemy", "flask_migrate", "werkzeug", "rlm_api", "dashboard"}))
"""


def test_a_worker_process_builds_no_flask_app():
    url, drop = create_database("rlm_layers")
    try:
        subprocess.run(
            [sys.executable, "-m", "alembic", "-c", "migrations/alembic.ini", "upgrade", "head"],
            cwd=ROOT, env={**os.environ, "DATABASE_URL": url}, check=True, capture_output=True, timeout=120,
        )
        broker = f"redis://{REDIS_HOST}:{REDIS_PORT}/15"
        env = {**os.environ, "DATABASE_URL": url, "CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": broker}
        done = subprocess.run(
            [sys.executable, "-c", WORKER_PROCESS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "[]"
    finally:
        drop()
