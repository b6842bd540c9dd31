"""trace_nodes.queued_at: when a sub-call was sent, apart from when it started running

A fan-out's calls wait for a free slot (the local model's, a worker's); the timeline draws the wait
apart from the run and counts only running calls as in flight. Null for every other node (and every
row before this revision): those start when they are created.

Revision ID: 0007_trace_node_queued_at
Revises: 0006_eval_runs
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_trace_node_queued_at"
down_revision = "0006_eval_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trace_nodes") as batch:
        batch.add_column(sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trace_nodes") as batch:
        batch.drop_column("queued_at")
