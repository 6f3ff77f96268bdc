"""upload leases: uploads in flight, for gc to tell from dead ones

Revision ID: 3c1f0d5e9a27
Revises: ff70e6cf847a
Create Date: 2026-12-02 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3c1f0d5e9a27'
down_revision = 'ff70e6cf847a'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('upload_leases',
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('owner', sa.String(length=32), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_upload_leases'))
    )


def downgrade():
    op.drop_table('upload_leases')
