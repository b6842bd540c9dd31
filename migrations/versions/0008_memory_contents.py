"""memory_contents: memory blocks stored once by hash, referenced by memory_snapshots

Every step and every child run writes a snapshot of the memory blocks; most repeat blocks already
stored. New snapshots keep only `content_sha256`; rows written before this revision keep their
own copy in `blocks` (now nullable), which readers use when `content_sha256` is null.

Revision ID: 0008_memory_contents
Revises: 0007_trace_node_queued_at
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008_memory_contents"
down_revision = "0007_trace_node_queued_at"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "memory_contents",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("blocks", JSONType, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    with op.batch_alter_table("memory_snapshots") as batch:
        batch.alter_column("blocks", existing_type=JSONType, nullable=True)
        batch.add_column(sa.Column("content_sha256", sa.String(length=64), nullable=True))
        batch.create_index("ix_memory_snapshots_content_sha256", ["content_sha256"])
        batch.create_foreign_key(
            "fk_memory_snapshots_content_sha256", "memory_contents", ["content_sha256"], ["sha256"]
        )


def downgrade() -> None:
    op.execute(
        "UPDATE memory_snapshots SET blocks = (SELECT blocks FROM memory_contents"
        " WHERE memory_contents.sha256 = memory_snapshots.content_sha256) WHERE blocks IS NULL"
    )
    with op.batch_alter_table("memory_snapshots") as batch:
        batch.drop_constraint("fk_memory_snapshots_content_sha256", type_="foreignkey")
        batch.drop_index("ix_memory_snapshots_content_sha256")
        batch.drop_column("content_sha256")
        batch.alter_column("blocks", existing_type=JSONType, nullable=False)
    op.drop_table("memory_contents")
