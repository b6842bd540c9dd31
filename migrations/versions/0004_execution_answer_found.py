"""executions.answer_found: whether a succeeded execution found an answer

"Not in the text" is an outcome, not an answer: a succeeded execution whose final answer is
"NONE" records false, so clients need not compare strings. Null until the execution succeeds.
Existing rows are filled from their final answer.

Revision ID: 0004_execution_answer_found
Revises: 0003_execution_offline
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_execution_answer_found"
down_revision = "0003_execution_offline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("answer_found", sa.Boolean(), nullable=True))
    op.execute(
        "UPDATE executions SET answer_found = "
        "CASE WHEN UPPER(TRIM(final_answer)) IN ('NONE', 'NONE.') OR TRIM(final_answer) = '' "
        "THEN false ELSE true END WHERE status = 'succeeded' AND final_answer IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("answer_found")
