"""What every process shares: settings, the database layer, the queue names, the strategies, tracing.

Above the engine (`rlm_worker/engine`), below the adapters (the Celery worker, the API, the
dashboard, the CLI); pyproject.toml's import contracts keep it that way.
"""
