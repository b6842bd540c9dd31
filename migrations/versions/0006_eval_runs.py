"""eval_runs, eval_items, model_call_cache: `rlm eval` / `POST /api/evals` and the opt-in call cache

An eval run is a task suite run under one or more configurations; each item is an ordinary
execution (so it is traced and shows in the dashboard) plus its score. The call cache keeps model
replies by a hash of the model and the messages when MODEL_CALL_CACHE is on.

Revision ID: 0006_eval_runs
Revises: 0005_execution_agent_id
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006_eval_runs"
down_revision = "0005_execution_agent_id"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("spec", JSONType, nullable=False),
        sa.Column("report", JSONType, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_eval_runs_owner", "eval_runs", ["owner"])
    op.create_table(
        "eval_items",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "eval_run_id",
            sa.String(length=32),
            sa.ForeignKey("eval_runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("config", sa.String(length=200), nullable=False),
        sa.Column("baseline", sa.Boolean(), nullable=False),
        sa.Column("task", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.String(length=200), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("scorer", sa.String(length=32), nullable=False),
        sa.Column("answers", JSONType, nullable=False),
        sa.Column(
            "execution_id",
            sa.String(length=32),
            sa.ForeignKey("executions.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("result", JSONType, nullable=True),
    )
    op.create_index("ix_eval_items_run_seq", "eval_items", ["eval_run_id", "seq"])
    op.create_index("ix_eval_items_execution_id", "eval_items", ["execution_id"])
    op.create_table(
        "model_call_cache",
        sa.Column("key", sa.String(length=64), primary_key=True),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("saved_usd", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_call_cache")
    op.drop_index("ix_eval_items_execution_id", table_name="eval_items")
    op.drop_index("ix_eval_items_run_seq", table_name="eval_items")
    op.drop_table("eval_items")
    op.drop_index("ix_eval_runs_owner", table_name="eval_runs")
    op.drop_table("eval_runs")
