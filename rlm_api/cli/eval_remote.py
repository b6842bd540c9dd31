"""`rlm eval --server URL`: the same eval on a deployment, through `POST /api/evals`.

The executions then run on the cluster's workers (they fan out there, and its dashboard shows
them); this process only submits, follows the progress, and writes the report it is given. Task
files are read here and sent inline (`user_tasks`): the server reads no files of ours.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

#: Seconds between two looks at a running eval.
POLL_SECONDS = 2.0


def remote_body(spec: Any) -> dict[str, Any]:
    """The spec as `POST /api/evals` takes it: task files become inline user tasks."""
    from rlm_api.evals.tasks.user import load_jsonl

    body = spec.model_dump(mode="json", exclude_none=True)
    lines = list(body.pop("user_tasks", []))
    for name in body.pop("task_files", []):
        for item in load_jsonl(Path(name)):
            line = {
                "id": item.id,
                "input": item.input,
                "question": item.question,
                "answers": list(item.answers),
                "scorer": item.scorer,
            }
            lines.append(
                {
                    **line,
                    **({"split": item.split} if item.split else {}),
                    **({"kind": item.kind} if item.kind else {}),
                }
            )
    if lines:
        body["user_tasks"] = lines
    return body


def run_remote(server: str, token: str | None, spec: Any, say) -> dict[str, Any]:  # noqa: ANN001
    """Submit, follow until finished, return the report. Errors are one-line usage errors."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = server.rstrip("/")
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        try:
            response = http.post("/api/evals", json=remote_body(spec))
        except httpx.HTTPError as exc:
            raise click.UsageError(f"--server {server}: {exc}") from None
        if response.status_code != 202:
            raise click.ClickException(f"{server} refused the eval: {_error(response)}")
        created = response.json()
        say(
            f"[rlm] eval {created['id']} on {base}: {created['executions']} executions ({base}/evals/{created['id']})"
        )
        last = -1
        while True:
            record = http.get(created["links"]["self"])
            if record.status_code != 200:
                raise click.ClickException(f"{server}: {_error(record)}")
            body = record.json()
            if body["finished"] != last:
                last = body["finished"]
                say(f"[rlm] eval {body['id']}: {last}/{body['executions']} done")
            if body["status"] != "running":
                if body["report"] is None:
                    raise click.ClickException(f"eval {body['id']} {body['status']}")
                return body["report"]
            time.sleep(POLL_SECONDS)


def _error(response: Any) -> str:
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except Exception:
        return f"HTTP {response.status_code}"
