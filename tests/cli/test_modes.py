"""Embedded and distributed modes share the engine: one scenario, run both ways, leaves one trace shape.

Distributed: HTTP → Celery root worker → `rlm.llm` workers → Postgres. Embedded: `rlm run` →
the foreground thread and an in-process pool → SQLite.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.cli.readme import run_shell
from tests.cli.scripts import program_responder
from tests.support.services import wait_for

CONTEXT = "abcdefghijklmnopqrstuvwxyz0123"
SCENARIO = program_responder(
    "parts = [context[i:i + 10] for i in range(0, len(context), 10)]\nprint(len(parts), 'parts')",
    "first = llm_query('summarise: ' + parts[0])\n"
    "rest = llm_query_batched(['summarise: ' + p for p in parts[1:]])\n"
    "FINAL(first + '|' + '|'.join(rest))",
    sub="leaf",
)


def shape(nodes: list[dict]) -> list[tuple]:
    """What a trace looks like with ids, times and texts taken out."""
    path_of = {n["id"]: n["path"] for n in nodes}
    return [
        (n["path"], n["kind"], n["depth"], n["status"], path_of.get(n["parent_id"]))
        for n in sorted(nodes, key=lambda n: n["path"])
    ]


def distributed_trace(client) -> tuple[dict, list[dict]]:
    response = client.post("/api/execute", json={"user_query": "summarise the parts", "context": CONTEXT})
    assert response.status_code == 202, response.get_json()
    execution_id = response.get_json()["execution_id"]

    def finished():
        body = client.get(f"/api/executions/{execution_id}").get_json()
        return body if body["status"] not in ("queued", "running") else None

    record = wait_for(finished, 60, what="the distributed execution")
    return record, client.get(f"/api/executions/{execution_id}/trace").get_json()["nodes"]


def embedded_trace(env: dict[str, str], tmp_path: Path) -> tuple[dict, list[dict]]:
    source = tmp_path / "context.txt"
    source.write_text(CONTEXT)
    done = run_shell(f"rlm run {source} -q 'summarise the parts' --json", env)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    db = Path(env["XDG_DATA_HOME"]) / "rlm-engine" / "rlm.db"
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT id, parent_id, path, kind, depth, status FROM trace_nodes WHERE execution_id = ?",
            (record["id"],),
        ).fetchall()
    return record, [dict(r) for r in rows]


def test_same_scenario_same_trace_shape_in_both_modes(stack_client, cli_env, scripted, tmp_path):
    scripted.responder = SCENARIO
    distributed, distributed_nodes = distributed_trace(stack_client)
    embedded, embedded_nodes = embedded_trace(cli_env, tmp_path)

    assert distributed["status"] == embedded["status"] == "succeeded"
    assert distributed["final_answer"] == embedded["final_answer"] == "leaf|leaf|leaf"
    assert shape(distributed_nodes) == shape(embedded_nodes)
    kinds = [kind for _, kind, *_ in shape(embedded_nodes)]
    assert kinds.count("iteration") == 2 and kinds.count("llm_call") == 3
    for key in ("iterations", "llm_calls", "total_input_tokens", "total_output_tokens"):
        assert distributed[key] == embedded[key], key
