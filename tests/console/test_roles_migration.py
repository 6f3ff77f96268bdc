"""Keys made before roles existed stay ordinary keys after the migration."""

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from app import create_app
from app.extensions import db
from tests.conftest import ROOT, base_overrides

BEFORE_ROLES = "7a2d4e6b9c10"


def test_existing_keys_become_members_and_the_role_goes_away_on_downgrade(tmp_path):
    app = create_app(base_overrides(tmp_path, f"sqlite:///{tmp_path / 'roles.db'}"))
    migrations = str(ROOT / "migrations")
    with app.app_context():
        upgrade(directory=migrations, revision=BEFORE_ROLES)
        with db.engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO tenants (id, slug, name, plan, created_at, cache_status,"
                    " cache_retention_days) VALUES ('team_x', 'x', 'x', 'pro', '2026-01-01', 'enabled', 30)"
                )
            )
            connection.execute(
                sa.text(
                    "INSERT INTO api_keys (tenant_id, digest, last_4, created_at)"
                    " VALUES ('team_x', :digest, 'abcd', '2026-01-01')"
                ),
                {"digest": "0" * 64},
            )
        upgrade(directory=migrations)
        with db.engine.connect() as connection:
            row = connection.execute(sa.text("SELECT role, last_used_at FROM api_keys")).one()
        assert tuple(row) == ("member", None)
        downgrade(directory=migrations, revision=BEFORE_ROLES)
        columns = {column["name"] for column in sa.inspect(db.engine).get_columns("api_keys")}
        assert "role" not in columns and "last_used_at" not in columns
        db.engine.dispose()
