"""build tool caches: per-tenant tool switches

Revision ID: b8d2e4f6a1c3
Revises: 8a4d2b6c1e90
Create Date: 2026-11-29 01:50:00

The tools' entries live in cache_entries (named "<tool>/<key>"), so the
triggers that keep tenants.cache_bytes count them with no change here.
"""

from alembic import op
import sqlalchemy as sa


revision = "b8d2e4f6a1c3"
down_revision = "8a4d2b6c1e90"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(
            sa.Column("cache_tools_off", sa.String(length=200), server_default="", nullable=False)
        )


def downgrade():
    # Not a batch: on SQLite that recreates tenants, which the storage-total
    # triggers on blobs and cache_entries name. SQLite drops a column itself
    # since 3.35.
    op.execute("ALTER TABLE tenants DROP COLUMN cache_tools_off")
