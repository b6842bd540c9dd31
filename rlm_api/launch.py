"""Hand a stored execution to whatever runs executions: Celery's `rlm.root` queue, or threads."""

from __future__ import annotations

from flask import current_app

from rlm_shared.queues import ROOT_QUEUE, RUN_EXECUTION_TASK
from rlm_worker.stop_notices import announce_stopped


def dispatch_mode() -> str:
    """'embedded' (threads of this process) or 'celery' (the `rlm.root` and `rlm.llm` queues)."""
    settings = current_app.config["RLM_SETTINGS"]
    return "embedded" if current_app.config.get("RLM_DISPATCH", settings.dispatch) == "embedded" else "celery"


def announce_cancelled(execution_id: str) -> None:
    """Leaf tasks already queued on `rlm.llm` hear the stop at once (`stop_notices`); embedded
    mode has none (its engine's own stop checks end its calls)."""
    if dispatch_mode() == "celery":
        announce_stopped(current_app.config["RLM_SETTINGS"].celery_broker_url, execution_id)


def launch_execution(execution_id: str) -> None:
    if dispatch_mode() == "embedded":
        from rlm_api.embedded import submit_embedded

        submit_embedded(current_app._get_current_object(), execution_id)
        return
    current_app.extensions["celery"].send_task(RUN_EXECUTION_TASK, args=[execution_id], queue=ROOT_QUEUE)
