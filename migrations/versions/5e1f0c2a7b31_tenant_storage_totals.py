"""tenant storage totals, kept by triggers

Revision ID: 5e1f0c2a7b31
Revises: 3c1f0d5e9a27
Create Date: 2026-11-28 22:40:00

Quotas, whoami and the cache status read a tenant's stored bytes on every
call; summing every blob and cache entry grew with the data. The totals live
on the tenant row, and triggers keep them in the transaction that adds,
resizes or removes a row, whichever code path (ORM, bulk delete, gc) does it.
"""

from alembic import op
import sqlalchemy as sa


revision = "5e1f0c2a7b31"
down_revision = "3c1f0d5e9a27"
branch_labels = None
depends_on = None

# (table, tenant column that holds its total)
COUNTED = (("blobs", "blob_bytes"), ("cache_entries", "cache_bytes"))


def upgrade():
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("blob_bytes", sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("cache_bytes", sa.BigInteger(), server_default="0", nullable=False))
    for table, total in COUNTED:
        op.execute(
            f"UPDATE tenants SET {total} = "
            f"(SELECT COALESCE(SUM(size_bytes), 0) FROM {table} WHERE {table}.tenant_id = tenants.id)"
        )
        if op.get_bind().dialect.name == "postgresql":
            _postgresql_triggers(table, total)
        else:
            _sqlite_triggers(table, total)


def _postgresql_triggers(table, total):
    # Statement triggers over transition tables: one UPDATE per tenant a
    # statement touched, after the statement took its row locks (so the
    # tenant row is the last lock a writer takes), whatever its row count.
    changes = {
        "INSERT": ("NEW TABLE AS new_rows", "SELECT tenant_id, size_bytes FROM new_rows"),
        "DELETE": ("OLD TABLE AS old_rows", "SELECT tenant_id, -size_bytes FROM old_rows"),
        "UPDATE": (
            "OLD TABLE AS old_rows NEW TABLE AS new_rows",
            "SELECT tenant_id, size_bytes FROM new_rows UNION ALL SELECT tenant_id, -size_bytes FROM old_rows",
        ),
    }
    for event, (transition, rows) in changes.items():
        name = f"hoard_{table}_{event.lower()}_bytes"
        op.execute(
            f"""
            CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE tenants SET {total} = {total} + delta.bytes
                FROM (SELECT tenant_id, SUM(size_bytes) AS bytes FROM ({rows}) AS changed (tenant_id, size_bytes)
                      GROUP BY tenant_id) AS delta
                WHERE tenants.id = delta.tenant_id AND delta.bytes <> 0;
                RETURN NULL;
            END
            $$
            """
        )
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {transition} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )


def _sqlite_triggers(table, total):
    op.execute(
        f"CREATE TRIGGER {table}_count_inserted_bytes AFTER INSERT ON {table} BEGIN "
        f"UPDATE tenants SET {total} = {total} + NEW.size_bytes WHERE id = NEW.tenant_id; END"
    )
    op.execute(
        f"CREATE TRIGGER {table}_count_deleted_bytes AFTER DELETE ON {table} BEGIN "
        f"UPDATE tenants SET {total} = {total} - OLD.size_bytes WHERE id = OLD.tenant_id; END"
    )
    op.execute(
        f"CREATE TRIGGER {table}_count_resized_bytes AFTER UPDATE OF size_bytes, tenant_id ON {table} "
        f"WHEN OLD.size_bytes IS NOT NEW.size_bytes OR OLD.tenant_id IS NOT NEW.tenant_id BEGIN "
        f"UPDATE tenants SET {total} = {total} - OLD.size_bytes WHERE id = OLD.tenant_id; "
        f"UPDATE tenants SET {total} = {total} + NEW.size_bytes WHERE id = NEW.tenant_id; END"
    )


def downgrade():
    for table, total in COUNTED:
        if op.get_bind().dialect.name == "postgresql":
            for event in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER hoard_{table}_{event}_bytes ON {table}")
                op.execute(f"DROP FUNCTION hoard_{table}_{event}_bytes()")
        else:
            for suffix in ("inserted", "deleted", "resized"):
                op.execute(f"DROP TRIGGER {table}_count_{suffix}_bytes")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("cache_bytes")
        batch.drop_column("blob_bytes")
