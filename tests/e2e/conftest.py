"""A live Hoard under gunicorn on PostgreSQL, shared by the e2e tests of a module."""

import itertools
import os
import secrets

import pytest

from tests import services_env
from tests.e2e import turbo
from tests.live_server import HoardServer, Tenant


@pytest.fixture(scope="module")
def hoard(new_postgres_database, tmp_path_factory):
    database_url = new_postgres_database()
    with HoardServer(var_dir=tmp_path_factory.mktemp("hoard"), database_url=database_url) as server:
        yield server


@pytest.fixture(scope="session")
def turbo_binary():
    """The pinned turbo CLI, installed with npm into .cache/ on first use."""
    services_env.require_commands("node", "npm", what="the turbo end-to-end tests")
    return turbo.install()


@pytest.fixture(scope="module")
def artifacta_home(tmp_path_factory):
    """An empty HOME for the Artifacta clients: no user config.toml and no
    ARTIFACTA_* defaults (session, agent, TTL, output mode) leak into a test."""
    home = tmp_path_factory.mktemp("artifacta-home")
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("ARTIFACTA_")]:
            patch.delenv(name)
        patch.setenv("HOME", str(home))
        patch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
        yield home


@pytest.fixture(scope="module")
def new_tenant(hoard):
    """Makes tenants on the live server through the real `flask` CLI, each
    with a fresh slug and key, for tests whose counts must not be shared."""
    serial = itertools.count(1)

    def create(plan: str = "pro") -> Tenant:
        return hoard.create_tenant(f"e2e-{next(serial)}-{secrets.token_hex(3)}", plan=plan)

    return create


@pytest.fixture(scope="module")
def s3_redirect_hoard(s3_server_env, new_postgres_database, tmp_path_factory):
    """A live Hoard on S3 storage (a moto server) whose downloads are
    presigned redirects: the build tools whose clients follow them are sent
    to the object store for a hit."""
    env = s3_server_env("hoard-tools", DOWNLOAD_MODE="redirect")
    var_dir = tmp_path_factory.mktemp("hoard-s3-redirect")
    with HoardServer(var_dir=var_dir, database_url=new_postgres_database(), env_overrides=env) as server:
        yield server
