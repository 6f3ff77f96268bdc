"""api key roles and last use, for the web console

Revision ID: 7a3d2c9e4b10
Revises: 7a2d4e6b9c10
Create Date: 2026-11-29 01:30:00

Existing keys stay ordinary ("member"): only a key made with --admin (or the
demo key) manages keys and settings in the console. last_used_at is written
at most once a minute per key and process (services/usage.py).
"""

from alembic import op
import sqlalchemy as sa


revision = "7a3d2c9e4b10"
down_revision = "7a2d4e6b9c10"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("role", sa.String(length=16), server_default="member", nullable=False))
        batch.add_column(sa.Column("last_used_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("console_signed_out_at", sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("console_signed_out_at")
        batch.drop_column("last_used_at")
        batch.drop_column("role")
