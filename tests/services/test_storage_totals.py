"""Per-tenant storage totals, kept by database triggers, equal the sums of
what is stored through every way bytes come and go: uploads of each kind,
dedup, cache replacements, deletes, gc eviction and purge, and concurrent
writers under gunicorn."""

import base64
import io
import threading
from datetime import timedelta

import pytest
import requests
from sqlalchemy import create_engine, func, select

from app.extensions import db
from app.models import Blob, CacheEntry, Tenant
from app.services import gc, tenants, usage
from tests import clock
from tests.factories import bearer, make_tenant
from tests.live_server import HoardServer
from tests.services.test_gc import cache_put

pytestmark = pytest.mark.storage


def assert_totals_are_the_sums() -> None:
    db.session.rollback()  # see the requests' commits
    blobs = dict(
        db.session.execute(select(Blob.tenant_id, func.sum(Blob.size_bytes)).group_by(Blob.tenant_id)).all()
    )
    cache = dict(
        db.session.execute(
            select(CacheEntry.tenant_id, func.sum(CacheEntry.size_bytes)).group_by(CacheEntry.tenant_id)
        ).all()
    )
    for tenant_id, blob_bytes, cache_bytes in db.session.execute(
        select(Tenant.id, Tenant.blob_bytes, Tenant.cache_bytes)
    ):
        assert (blob_bytes, cache_bytes) == (blobs.get(tenant_id, 0), cache.get(tenant_id, 0)), tenant_id


def upload(client, auth, data: bytes) -> str:
    body = {"filename": "out.bin", "content": base64.b64encode(data).decode()}
    response = client.post("/v1/artifacts", json=body, headers=auth)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["artifact_id"]


def upload_multipart(client, auth, data: bytes) -> None:
    response = client.post("/v1/artifacts", data={"file": (io.BytesIO(data), "f.bin")}, headers=auth)
    assert response.status_code == 201, response.get_json()


def test_totals_follow_every_write(client, auth, tenant_and_key):
    tenant = tenant_and_key[0]
    _, other_key = make_tenant("other")
    other = bearer(other_key)

    first = upload(client, auth, b"a" * 100)
    upload(client, auth, b"a" * 100)  # dedup: one blob
    upload_multipart(client, auth, b"m" * 33)
    upload(client, other, b"a" * 100)  # another tenant's own blob
    assert_totals_are_the_sums()
    assert usage.storage_bytes(tenant) == 133

    cache_put(client, auth, "aaaa", b"x" * 50)
    cache_put(client, auth, "aaaa", b"y" * 70)  # replacement
    cache_put(client, auth, "bbbb", b"z" * 10)
    cache_put(client, other, "aaaa", b"o" * 5)
    assert_totals_are_the_sums()
    assert usage.storage_bytes(tenant) == 133 + 80

    assert client.delete(f"/v1/artifacts/{first}", headers=auth).status_code == 200
    clock.advance(gc.ARTIFACT_GRACE + timedelta(days=1))
    gc.collect(now=clock.now())  # purges the deleted artifact and evicts the unread cache
    assert_totals_are_the_sums()

    tenants.update_tenant(tenant, cache_max_bytes=0)
    gc.collect(now=clock.now())
    assert_totals_are_the_sums()
    db.session.rollback()
    assert db.session.get(Tenant, tenant.id).cache_bytes == 0


def test_whoami_reads_one_row_for_storage(client, auth):
    cache_put(client, auth, "aaaa", b"x" * 50)
    upload(client, auth, b"a" * 100)
    body = client.get("/v1/whoami", headers=auth).get_json()
    assert body["usage_storage_bytes"] == 150


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_totals_hold_under_concurrent_writers(database, new_postgres_database, tmp_path):
    url = new_postgres_database() if database == "postgresql" else None
    server = HoardServer(
        var_dir=tmp_path / "hoard", database_url=url, env_overrides={"RATELIMIT_ENABLED": "false"}
    )
    with server:
        team = server.create_tenant("busy")
        auth = bearer(team.key)
        failures = []

        def writer(index: int) -> None:
            with requests.Session() as session:
                for round_ in range(4):
                    # Eight writers share four hashes: replacements race inserts.
                    body = bytes([65 + index]) * (100 * (index + 1) + round_)
                    response = session.put(f"{server.url}/v8/artifacts/h{index % 4}", data=body, headers=auth)
                    if response.status_code != 202:
                        failures.append(response.text)
                    # A build tool's entries count alike (services/tool_cache.py).
                    url = f"{server.url}/cache/gradle/g{index % 4}"
                    response = session.put(url, data=body[: 50 + index], headers=auth)
                    if response.status_code != 200:
                        failures.append(response.text)
                    data = base64.b64encode(bytes([97 + round_]) * (10 + index)).decode()
                    response = session.post(
                        f"{server.url}/v1/artifacts", json={"filename": "f", "content": data}, headers=auth
                    )
                    if response.status_code != 201:
                        failures.append(response.text)

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        stats = requests.get(f"{server.url}/v1/whoami", headers=auth).json()
    engine = create_engine(
        (url or f"sqlite:///{tmp_path / 'hoard' / 'hoard.db'}").replace(
            "postgresql://", "postgresql+psycopg://"
        )
    )
    with engine.connect() as connection:
        blob_sum = connection.scalar(select(func.coalesce(func.sum(Blob.size_bytes), 0)))
        cache_sum = connection.scalar(select(func.coalesce(func.sum(CacheEntry.size_bytes), 0)))
        totals = connection.execute(
            select(Tenant.blob_bytes, Tenant.cache_bytes).where(Tenant.id == team.id)
        ).one()
    engine.dispose()
    assert tuple(totals) == (blob_sum, cache_sum)
    assert stats["usage_storage_bytes"] == blob_sum + cache_sum
