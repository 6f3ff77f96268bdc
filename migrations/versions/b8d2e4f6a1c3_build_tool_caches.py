"""build tool caches: per-tenant tool switches and per-tool usage

Revision ID: b8d2e4f6a1c3
Revises: 5e1f0c2a7b31
Create Date: 2026-11-29 01:50:00

The tools' entries live in cache_entries (named "<tool>/<key>"), so the
triggers that keep tenants.cache_bytes count them with no change here.
"""

from alembic import op
import sqlalchemy as sa


revision = "b8d2e4f6a1c3"
down_revision = "5e1f0c2a7b31"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(
            sa.Column("cache_tools_off", sa.String(length=200), server_default="", nullable=False)
        )
    op.create_table(
        "tool_usage_months",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("tool", sa.String(length=16), nullable=False),
        sa.Column("cache_hits", sa.BigInteger(), nullable=False),
        sa.Column("cache_misses", sa.BigInteger(), nullable=False),
        sa.Column("cache_bytes_served", sa.BigInteger(), nullable=False),
        sa.Column("cache_bytes_uploaded", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tool_usage_months_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tool_usage_months")),
        sa.UniqueConstraint("tenant_id", "month", "tool", name=op.f("uq_tool_usage_months_tenant_id")),
    )


def downgrade():
    op.drop_table("tool_usage_months")
    # Not a batch: on SQLite that recreates tenants, which the storage-total
    # triggers on blobs and cache_entries name. SQLite drops a column itself
    # since 3.35.
    op.execute("ALTER TABLE tenants DROP COLUMN cache_tools_off")
