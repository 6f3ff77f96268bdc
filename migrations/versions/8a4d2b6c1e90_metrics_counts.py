"""object counts per tenant kept by the storage triggers; gc totals

Revision ID: 8a4d2b6c1e90
Revises: 7a3d2c9e4b10
Create Date: 2026-11-29 01:40:00

/metrics reports each tenant's stored objects at every scrape: counting every
blob and cache entry each time would grow with the data. The triggers that
keep the byte totals (5e1f0c2a7b31) keep the counts too, in the same
statement, so no write gains a trigger. gc_totals holds what every gc run
removed, for /metrics to read whichever process or machine ran gc.
"""

from alembic import op
import sqlalchemy as sa


revision = "8a4d2b6c1e90"
down_revision = "7a3d2c9e4b10"
branch_labels = None
depends_on = None

# (table, tenant column of its bytes, tenant column of its objects)
COUNTED = (("blobs", "blob_bytes", "blob_count"), ("cache_entries", "cache_bytes", "cache_count"))


def upgrade():
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("blob_count", sa.BigInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("cache_count", sa.BigInteger(), server_default="0", nullable=False))
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, total, count in COUNTED:
        op.execute(
            f"UPDATE tenants SET {count} = (SELECT COUNT(*) FROM {table} WHERE {table}.tenant_id = tenants.id)"
        )
        if postgresql:
            _postgresql_functions(table, total, count)
        else:
            _drop_sqlite_triggers(table)
            _sqlite_triggers(table, total, count)
    op.create_table(
        "gc_totals",
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("runs", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("objects", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_run_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("category", name=op.f("pk_gc_totals")),
    )


def _postgresql_functions(table, total, count):
    """The trigger functions of 5e1f0c2a7b31, replaced in place (the triggers
    call them by name); `count` None writes the bytes alone, as they were."""
    changes = {
        "insert": "SELECT tenant_id, size_bytes, 1 FROM new_rows",
        "delete": "SELECT tenant_id, -size_bytes, -1 FROM old_rows",
        "update": "SELECT tenant_id, size_bytes, 1 FROM new_rows "
        "UNION ALL SELECT tenant_id, -size_bytes, -1 FROM old_rows",
    }
    for event, rows in changes.items():
        if count is None:
            assign, changed = f"{total} = {total} + delta.bytes", "delta.bytes <> 0"
        else:
            assign = f"{total} = {total} + delta.bytes, {count} = {count} + delta.objects"
            changed = "(delta.bytes <> 0 OR delta.objects <> 0)"
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION hoard_{table}_{event}_bytes() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE tenants SET {assign}
                FROM (SELECT tenant_id, SUM(size_bytes) AS bytes, SUM(objects) AS objects
                      FROM ({rows}) AS changed (tenant_id, size_bytes, objects)
                      GROUP BY tenant_id) AS delta
                WHERE tenants.id = delta.tenant_id AND {changed};
                RETURN NULL;
            END
            $$
            """
        )


def _drop_sqlite_triggers(table):
    for suffix in ("inserted", "deleted", "resized"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_count_{suffix}_bytes")


def _sqlite_triggers(table, total, count):
    """5e1f0c2a7b31's triggers, with the object count when `count` is given."""
    plus = f"{total} = {total} + NEW.size_bytes" + (f", {count} = {count} + 1" if count else "")
    minus = f"{total} = {total} - OLD.size_bytes" + (f", {count} = {count} - 1" if count else "")
    op.execute(
        f"CREATE TRIGGER {table}_count_inserted_bytes AFTER INSERT ON {table} BEGIN "
        f"UPDATE tenants SET {plus} WHERE id = NEW.tenant_id; END"
    )
    op.execute(
        f"CREATE TRIGGER {table}_count_deleted_bytes AFTER DELETE ON {table} BEGIN "
        f"UPDATE tenants SET {minus} WHERE id = OLD.tenant_id; END"
    )
    op.execute(
        f"CREATE TRIGGER {table}_count_resized_bytes AFTER UPDATE OF size_bytes, tenant_id ON {table} "
        f"WHEN OLD.size_bytes IS NOT NEW.size_bytes OR OLD.tenant_id IS NOT NEW.tenant_id BEGIN "
        f"UPDATE tenants SET {minus} WHERE id = OLD.tenant_id; "
        f"UPDATE tenants SET {plus} WHERE id = NEW.tenant_id; END"
    )


def downgrade():
    op.drop_table("gc_totals")
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, total, _ in COUNTED:
        if postgresql:
            _postgresql_functions(table, total, None)
        else:
            # Dropped while the batch below rebuilds tenants, which their
            # bodies name, and made again after it.
            _drop_sqlite_triggers(table)
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("cache_count")
        batch.drop_column("blob_count")
    if not postgresql:
        for table, total, _ in COUNTED:
            _sqlite_triggers(table, total, None)
