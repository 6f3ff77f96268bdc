"""Concurrent uploads against one storage quota, under gunicorn on PostgreSQL.

Each upload fits the room it sees when it starts; together they do not.
The totals the database triggers keep decide at commit, under the tenant
row's lock, so what is committed never passes the quota.
"""

import threading

import pytest
import requests
from sqlalchemy import create_engine, func, select

from app.models import CacheEntry
from tests.live_server import HoardServer

QUOTA = 1000
BODY = 300
WRITERS = 8


@pytest.mark.parametrize("chunked", [False, True], ids=["announced", "chunked"])
def test_committed_bytes_never_pass_the_quota(chunked, new_postgres_database, tmp_path):
    url = new_postgres_database()
    server = HoardServer(
        var_dir=tmp_path / "hoard", database_url=url, env_overrides={"RATELIMIT_ENABLED": "false"}
    )
    with server:
        team = server.create_tenant("quota")
        server.flask("tenants", "update", "quota", "--storage-quota-bytes", str(QUOTA))
        auth = {"Authorization": f"Bearer {team.key}"}
        barrier = threading.Barrier(WRITERS)
        statuses = []

        def writer(index: int) -> None:
            body = bytes([65 + index]) * BODY
            data = iter([body]) if chunked else body  # a generator makes requests send it chunked
            barrier.wait()
            statuses.append(
                requests.put(f"{server.url}/v8/artifacts/h{index}", data=data, headers=auth).status_code
            )

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        usage = requests.get(f"{server.url}/v1/whoami", headers=auth).json()["usage_storage_bytes"]

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        committed = connection.scalar(select(func.coalesce(func.sum(CacheEntry.size_bytes), 0)))
    engine.dispose()
    accepted = statuses.count(202)
    print(f"statuses: {sorted(statuses)}")
    assert set(statuses) <= {202, 403}
    assert committed == accepted * BODY == usage
    assert committed <= QUOTA
    assert accepted == QUOTA // BODY
