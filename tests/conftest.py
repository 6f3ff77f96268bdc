"""Fixtures: the app on SQLite and on PostgreSQL, migrated to head once per
run, with every table emptied between tests; a test client and CLI runner."""

import contextvars
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests
import sqlalchemy as sa
from botocore.config import Config
from flask.testing import FlaskClient
from flask_migrate import upgrade

from app import create_app
from app.extensions import db
from config import Config as HoardConfig
from tests import clock, services_env
from tests.factories import bearer, make_tenant
from tests.live_server import free_port

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"


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
        # In-process race tests run more threads than a gunicorn worker has.
        "SQLALCHEMY_ENGINE_OPTIONS": {**HoardConfig.SQLALCHEMY_ENGINE_OPTIONS, "max_overflow": 16},
    }


@pytest.fixture(scope="session", params=["sqlite", "postgresql", "postgresql-s3"])
def migrated_app(request, tmp_path_factory):
    """One app per database (and, on PostgreSQL, per storage backend),
    migrated to head with the real migrations."""
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'hoard.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    overrides = base_overrides(tmp, url)
    if request.param.endswith("-s3"):
        overrides.update(
            STORAGE_BACKEND="s3",
            S3_ENDPOINT_URL=request.getfixturevalue("moto_server"),
            S3_REGION=REGION,
            S3_PART_SIZE=5 * 1024 * 1024,
        )
    app = create_app(overrides)
    with app.app_context():
        upgrade(directory=app.config["MIGRATIONS_DIR"])
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def app(migrated_app, tmp_path, request):
    """The migrated app with empty tables, fresh storage and a reset clock."""
    app = migrated_app
    app.config["STORAGE_LOCAL_ROOT"] = str(tmp_path / "storage")
    if app.config["STORAGE_BACKEND"] == "s3":
        app.config["S3_BUCKET"] = request.getfixturevalue("make_bucket")()
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


def pytest_configure(config):
    config.addinivalue_line("markers", "storage: also run on PostgreSQL with S3 storage (moto)")
    config.addinivalue_line("markers", "local_storage: about Hoard's own local-storage URLs or files")


def pytest_collection_modifyitems(config, items):
    """The S3 variant of the app runs the tests that move bytes (marked
    `storage`), except those about local storage itself; the rest of the API
    suite never reaches the storage backend."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_s3 = callspec is not None and callspec.params.get("migrated_app") == "postgresql-s3"
        wanted = item.get_closest_marker("storage") and not item.get_closest_marker("local_storage")
        (drop if on_s3 and not wanted else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


class RequestScopedClient(FlaskClient):
    """Runs each request in its own context, as a real server does.

    The `app` fixture keeps an app context open for the whole test; a request
    pushed inside it would share `g` (where auth caches the caller) and the
    database session with every other request of the test.
    """

    def open(self, *args, **kwargs):
        return contextvars.Context().run(super().open, *args, **kwargs)


@pytest.fixture
def client(app):
    app.test_client_class = RequestScopedClient
    try:
        yield app.test_client()
    finally:
        app.test_client_class = None


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def tenant_and_key(app):
    return make_tenant("acme")


@pytest.fixture
def auth(tenant_and_key):
    return bearer(tenant_and_key[1])


@pytest.fixture
def tenant(tenant_and_key):
    return tenant_and_key[0]


@pytest.fixture
def other(app):
    """A second pro tenant: (tenant, auth headers)."""
    tenant, key = make_tenant("globex")
    return tenant, bearer(key)


@pytest.fixture
def free(app):
    """A free-plan tenant: (tenant, auth headers)."""
    tenant, key = make_tenant("freeco", plan="free")
    return tenant, bearer(key)


@pytest.fixture(scope="session")
def aws_env(tmp_path_factory):
    """Dummy credentials, and no profile or config file from the machine."""
    empty = tmp_path_factory.mktemp("aws") / "none"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_CONFIG_FILE", str(empty))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            mp.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session")
def moto_server(aws_env):
    """The endpoint URL of a moto server on a free local port.

    A process of its own: sharing the tests' interpreter (and its GIL) would
    make every S3 call wait on the test that made it."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/moto-api/", timeout=1).status_code < 500:
                break
        except requests.RequestException:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("moto_server did not start")
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_client(moto_server):
    """A client of our own, to look at the bucket without going through S3Storage."""
    return boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name=REGION,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


@pytest.fixture
def make_bucket(s3_client):
    """Makes fresh buckets; each is emptied (uploads aborted, objects
    deleted) and removed when the test ends."""
    made = []

    def make() -> str:
        made.append(f"hoard-test-{secrets.token_hex(6)}")
        s3_client.create_bucket(Bucket=made[-1])
        return made[-1]

    yield make
    for bucket in made:
        for upload in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            s3_client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                s3_client.delete_object(Bucket=bucket, Key=item["Key"])
        s3_client.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="session")
def s3_server_env(moto_server, s3_client):
    """Makes a fresh bucket; returns the environment pointing a HoardServer at it."""

    def make(prefix: str = "hoard-e2e", **extra: str) -> dict[str, str]:
        bucket = f"{prefix}-{secrets.token_hex(4)}"
        s3_client.create_bucket(Bucket=bucket)
        return {
            "STORAGE_BACKEND": "s3",
            "S3_BUCKET": bucket,
            "S3_ENDPOINT_URL": moto_server,
            "S3_REGION": REGION,
            **extra,
        }

    return make
