"""usage hours and cache entry read counts: the console's rollups

Revision ID: 7a2d4e6b9c10
Revises: 5e1f0c2a7b31
Create Date: 2026-11-29 02:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7a2d4e6b9c10'
down_revision = '5e1f0c2a7b31'
branch_labels = None
depends_on = None

COUNTERS = (
    'remote_hits', 'remote_misses', 'local_hits', 'local_misses', 'remote_saved_ms', 'local_saved_ms',
    'ci_events', 'interactive_events', 'other_events',
    'lookups_hit', 'lookups_miss', 'uploads', 'bytes_uploaded', 'bytes_served',
)


def upgrade():
    op.create_table('usage_hours',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('hour', sa.DateTime(), nullable=False),
    *[sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTERS],
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_usage_hours_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'hour', name=op.f('pk_usage_hours'))
    )
    # ADD COLUMN, not a batch rebuild: SQLite keeps cache_entries' triggers.
    op.add_column('cache_entries', sa.Column('read_count', sa.BigInteger(), server_default='0', nullable=False))
    op.create_index('ix_cache_entries_tenant_size', 'cache_entries', ['tenant_id', 'size_bytes'])
    op.create_index('ix_cache_entries_tenant_reads', 'cache_entries', ['tenant_id', 'read_count'])


def downgrade():
    op.drop_index('ix_cache_entries_tenant_reads', table_name='cache_entries')
    op.drop_index('ix_cache_entries_tenant_size', table_name='cache_entries')
    # Plain DROP COLUMN (SQLite 3.35+), not a batch rebuild, for the triggers' sake.
    op.execute('ALTER TABLE cache_entries DROP COLUMN read_count')
    op.drop_table('usage_hours')
