"""Hand a stored execution to whatever runs executions: Celery's `rlm.root` queue, or threads."""

from __future__ import annotations

from flask import current_app

from rlm_worker.queues import ROOT_QUEUE, RUN_EXECUTION_TASK


def launch_execution(execution_id: str) -> None:
    settings = current_app.config["RLM_SETTINGS"]
    if current_app.config.get("RLM_DISPATCH", settings.dispatch) == "embedded":
        from rlm_worker.embedded import submit_embedded

        submit_embedded(current_app._get_current_object(), execution_id)
        return
    current_app.extensions["celery"].send_task(RUN_EXECUTION_TASK, args=[execution_id], queue=ROOT_QUEUE)
