"""A live Hoard under gunicorn on PostgreSQL, shared by the e2e tests of a module."""

import pytest

from tests.live_server import HoardServer


@pytest.fixture(scope="module")
def hoard(new_postgres_database, tmp_path_factory):
    database_url = new_postgres_database()
    with HoardServer(var_dir=tmp_path_factory.mktemp("hoard"), database_url=database_url) as server:
        yield server
