"""The schema comes from the migrations, and they agree with the models."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from app import create_app
from app.extensions import db
from tests.conftest import ROOT, base_overrides


def _fresh_app(tmp_path, database_url):
    return create_app(base_overrides(tmp_path, database_url))


def test_upgrade_on_empty_postgres_creates_the_whole_schema_and_matches_the_models(
    new_postgres_database, tmp_path
):
    app = _fresh_app(tmp_path, new_postgres_database())
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        tables = set(sa.inspect(db.engine).get_table_names())
        assert set(db.metadata.tables) <= tables
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, db.metadata) == []
        db.engine.dispose()


def test_migrations_go_down_and_up_again_on_sqlite(tmp_path):
    app = _fresh_app(tmp_path, f"sqlite:///{tmp_path / 'm.db'}")
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        downgrade(directory=str(ROOT / "migrations"), revision="base")
        assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade(directory=str(ROOT / "migrations"))
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, db.metadata) == []
        db.engine.dispose()
