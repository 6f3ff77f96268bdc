"""Fixtures: the app on SQLite and on PostgreSQL, migrated to head once per
run, with every table emptied between tests; a test client and CLI runner."""

import secrets
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from app import clock, create_app
from app.extensions import db
from tests import services_env
from tests.factories import bearer, make_tenant

ROOT = Path(__file__).resolve().parent.parent


def _create_postgres_database() -> str:
    services_env.require(services_env.POSTGRES_URL, "PostgreSQL")
    name = f"hoard_test_{secrets.token_hex(4)}"
    admin = sa.create_engine(
        services_env.POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    base = services_env.POSTGRES_URL.rsplit("/", 1)[0]
    return f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://")


def _drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(
        services_env.POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def new_postgres_database():
    """A factory of empty PostgreSQL databases, all dropped at the end of the run."""
    created = []

    def create() -> str:
        created.append(_create_postgres_database())
        return created[-1]

    yield create
    for url in created:
        _drop_postgres_database(url)


@pytest.fixture(scope="session")
def postgres_url(new_postgres_database):
    return new_postgres_database()


def base_overrides(tmp_path: Path, database_url: str) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "STORAGE_BACKEND": "local",
        "STORAGE_LOCAL_ROOT": str(tmp_path / "storage"),
        # The limiter stays on (its on/off switch is process-wide), with limits
        # no functional test reaches; tests/api/test_rate_limits.py lowers them.
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_STORAGE_URI": "memory://",
        "RATE_LIMIT_BURST": 1_000_000,
        "RATE_LIMIT_SUSTAINED": 1_000_000,
        "RATE_LIMIT_ANONYMOUS": "1000000 per second",
        "RATE_LIMIT_PUBLIC": "1000000 per second",
        "MIGRATIONS_DIR": str(ROOT / "migrations"),
    }


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def migrated_app(request, tmp_path_factory):
    """One app per database, migrated to head with the real migrations."""
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'hoard.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    app = create_app(base_overrides(tmp, url))
    with app.app_context():
        upgrade(directory=app.config["MIGRATIONS_DIR"])
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def app(migrated_app, tmp_path):
    """The migrated app with empty tables, fresh storage and a reset clock."""
    app = migrated_app
    app.config["STORAGE_LOCAL_ROOT"] = str(tmp_path / "storage")
    app.extensions["hoard_storage"] = None
    clock.reset()
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        yield app
        db.session.remove()
    clock.reset()
    shutil.rmtree(tmp_path / "storage", ignore_errors=True)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def tenant_and_key(app):
    return make_tenant("acme")


@pytest.fixture
def auth(tenant_and_key):
    return bearer(tenant_and_key[1])
