"""lz4 for the large text columns (Postgres)

Postgres compresses a text value over ~2 kB with pglz by default; for a 10 M-character context
that is ~0.13 s of the database's CPU on every submit, and ~80 ms for the 10 MB of prompts a
256-chunk fan-out writes into the trace (measured: BENCHMARKS.md). lz4 does the same in about a
third of the time, for about twice the stored size (still ~5x smaller than the text). Values already
stored keep their compression; Postgres reads both. SQLite and Postgres servers without lz4
(before 14, or built without it) are left as they are.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LARGE_TEXT = {
    "contexts": ("content",),
    "trace_nodes": ("prompt", "response", "code", "stdout", "stderr"),
}


def _set_compression(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or bind.dialect.server_version_info < (14,):
        return
    try:
        with bind.begin_nested():  # a server built without lz4 rejects it: keep its default then
            for table, columns in LARGE_TEXT.items():
                for column in columns:
                    op.execute(
                        sa.text(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" SET COMPRESSION {method}')
                    )
    except sa.exc.DBAPIError as exc:
        if "not supported" not in str(exc):
            raise


def upgrade():
    _set_compression("lz4")


def downgrade():
    _set_compression("default")
