"""executions.agent_id: the calling agent, when a client names one

Letta sends the calling agent's id in an `x-agent-id` header over MCP; the API accepts the same
header on POST /api/execute. Recorded so the dashboard can show one agent's executions. Null when
no agent was named (every row before this revision).

Revision ID: 0005_execution_agent_id
Revises: 0004_execution_answer_found
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_execution_agent_id"
down_revision = "0004_execution_answer_found"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("agent_id", sa.String(length=200), nullable=True))
        batch.create_index("ix_executions_agent_id", ["agent_id"])


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_index("ix_executions_agent_id")
        batch.drop_column("agent_id")
