"""The executions list filters by the calling agent (`x-agent-id`, recorded as `agent_id`)."""

from __future__ import annotations

from rlm_api.database import db
from rlm_shared.models import Execution


def submit(client, question: str, agent_id: str | None = None) -> str:
    headers = {"X-Agent-Id": agent_id} if agent_id else {}
    response = client.post("/api/execute", json={"user_query": question, "context": "text"}, headers=headers)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def test_executions_list_filters_by_agent(app, client):
    mine = submit(client, "asked by the research agent", "agent-research-1")
    submit(client, "asked by the mail agent", "agent-mail-2")
    submit(client, "asked by nobody in particular")
    with app.app_context():
        assert db.session.get(Execution, mine).agent_id == "agent-research-1"

    page = client.get("/executions?agent=agent-research-1").get_data(as_text=True)
    assert "asked by the research agent" in page
    assert "asked by the mail agent" not in page and "nobody in particular" not in page
    assert 'name="agent" value="agent-research-1"' in page  # the filter control shows it

    everything = client.get("/executions").get_data(as_text=True)
    assert "asked by the mail agent" in everything and "nobody in particular" in everything
    assert 'href="/executions?agent=agent-mail-2"' in everything  # each agent links to its filter
    assert "No executions match" in client.get("/executions?agent=agent-unknown").get_data(as_text=True)
