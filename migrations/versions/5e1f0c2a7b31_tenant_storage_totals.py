"""tenant storage totals, kept by triggers

Revision ID: 5e1f0c2a7b31
Revises: ff70e6cf847a
Create Date: 2026-11-28 22:40:00

Quotas, whoami and the cache status read a tenant's stored bytes on every
call; summing every blob and cache entry grew with the data. The totals live
on the tenant row, and triggers keep them in the transaction that adds,
resizes or removes a row, whichever code path (ORM, bulk delete, gc) does it.
"""

from alembic import op
import sqlalchemy as sa


revision = "5e1f0c2a7b31"
down_revision = "ff70e6cf847a"
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
    # Row triggers run at the end of their statement, after it took its row
    # locks: the tenant row is always the last lock a writer takes.
    op.execute(
        f"""
        CREATE FUNCTION hoard_count_{total}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                UPDATE tenants SET {total} = {total} + NEW.size_bytes WHERE id = NEW.tenant_id;
            ELSIF TG_OP = 'DELETE' THEN
                UPDATE tenants SET {total} = {total} - OLD.size_bytes WHERE id = OLD.tenant_id;
            ELSE
                UPDATE tenants SET {total} = {total} - OLD.size_bytes WHERE id = OLD.tenant_id;
                UPDATE tenants SET {total} = {total} + NEW.size_bytes WHERE id = NEW.tenant_id;
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        f"CREATE TRIGGER {table}_count_bytes AFTER INSERT OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION hoard_count_{total}()"
    )
    op.execute(
        f"CREATE TRIGGER {table}_count_resized_bytes AFTER UPDATE OF size_bytes, tenant_id ON {table} "
        f"FOR EACH ROW WHEN (OLD.size_bytes IS DISTINCT FROM NEW.size_bytes OR OLD.tenant_id <> NEW.tenant_id) "
        f"EXECUTE FUNCTION hoard_count_{total}()"
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
            op.execute(f"DROP TRIGGER {table}_count_bytes ON {table}")
            op.execute(f"DROP TRIGGER {table}_count_resized_bytes ON {table}")
            op.execute(f"DROP FUNCTION hoard_count_{total}()")
        else:
            for suffix in ("inserted", "deleted", "resized"):
                op.execute(f"DROP TRIGGER {table}_count_{suffix}_bytes")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("cache_bytes")
        batch.drop_column("blob_bytes")
