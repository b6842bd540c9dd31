"""executions.offline: whether an execution ran on the offline plan

With no model chosen and no provider configured, `rlm run`, `rlm serve`, the API and the
dashboard run the same offline plan (the local model reads the chunks, a built-in strategy plays
the root); the record says so. Existing rows ran with a provider or said nothing: false.

Revision ID: 0003_execution_offline
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_execution_offline"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("offline", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("offline")
