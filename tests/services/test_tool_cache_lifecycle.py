"""The build tools' entries live as the turbo cache's do: gc evicts them by
retention and size cap, the quota counts them, the storage totals the
triggers keep include them, and the orphan sweep leaves them alone."""

import pytest

from app.extensions import db
from app.models import CacheEntry, Tenant
from app.services import tenants, usage
from tests import clock
from tests.factories import bearer, make_tenant
from tests.services.test_gc import DAY, HOUR, cache_get, cache_put, objects, rows, run_gc, tally
from tests.services.test_storage_totals import assert_totals_are_the_sums

pytestmark = pytest.mark.storage


def tool_put(client, auth, url: str, body: bytes) -> None:
    response = client.put(url, data=body, headers=auth)
    assert response.status_code == 200, response.data


def tool_get(client, auth, url: str) -> int:
    return client.get(url, headers=auth).status_code


def test_tool_entries_unread_for_the_retention_are_evicted_beside_turbos(client, auth):
    tool_put(client, auth, "/cache/ccache/ab/kept", b"k" * 100)
    tool_put(client, auth, "/cache/gradle/0123abcd", b"g" * 70)
    tool_put(client, auth, "/v1/cache/123456", b"n" * 30)
    cache_put(client, auth, "turbo1", b"t" * 20)
    clock.advance(20 * DAY)
    assert tool_get(client, auth, "/cache/ccache/ab/kept") == 200  # refreshes its last read

    clock.advance(11 * DAY)
    report = run_gc()

    assert tally(report.cache_expired) == (3, 120)
    assert tool_get(client, auth, "/cache/ccache/ab/kept") == 200
    assert tool_get(client, auth, "/cache/gradle/0123abcd") == 404
    assert tool_get(client, auth, "/v1/cache/123456") == 404
    assert cache_get(client, auth, "turbo1") == 404
    assert rows(CacheEntry) == 1 and len(objects()) == 1


def test_the_size_cap_evicts_the_least_recently_read_across_tools(client, auth, tenant_and_key):
    tenants.update_tenant(tenant_and_key[0], cache_max_bytes=250)
    urls = ["/cache/rush/first", "/cache/sccache/2/7/8/second", "/cache/bazel/ac/" + "0" * 64]
    for url in urls:
        tool_put(client, auth, url, b"x" * 100)
        clock.advance(2 * HOUR)
    assert tool_get(client, auth, urls[0]) == 200  # read order now: second, third, first

    report = run_gc()

    assert tally(report.cache_over_cap) == (1, 100)
    assert [tool_get(client, auth, url) for url in urls] == [200, 404, 200]


def test_tool_entries_count_against_the_quota_and_the_totals(client, auth, tenant_and_key):
    tenant = tenant_and_key[0]
    _, other_key = make_tenant("other")
    other = bearer(other_key)
    tool_put(client, auth, "/cache/gradle/aaaa", b"a" * 50)
    tool_put(client, auth, "/cache/gradle/aaaa", b"b" * 70)  # replacement
    tool_put(client, auth, "/v1/cache/42", b"n" * 10)
    tool_put(client, other, "/cache/gradle/aaaa", b"o" * 5)
    assert_totals_are_the_sums()
    assert usage.storage_bytes(tenant) == 80

    tenants.update_tenant(tenant, storage_quota_bytes=100)
    refused = client.put("/cache/gradle/big", data=b"r" * 30, headers=auth)
    assert refused.status_code == 403
    assert refused.get_json()["code"] == "over_limit"
    assert_totals_are_the_sums()

    tenants.update_tenant(tenant, cache_max_bytes=1)  # 0 would remove the cap
    run_gc()
    assert_totals_are_the_sums()
    db.session.rollback()
    assert db.session.get(Tenant, tenant.id).cache_bytes == 0


@pytest.mark.local_storage
def test_the_orphan_sweep_keeps_tool_entries_and_takes_unnamed_objects(client, auth):
    tool_put(client, auth, "/cache/ccache/ab/cd", b"c" * 40)
    tool_put(client, auth, "/v1/cache/77", b"n" * 20)
    before = objects()
    assert len(before) == 2
    report = run_gc()
    assert tally(report.orphans) == (0, 0)
    assert objects() == before
    assert tool_get(client, auth, "/cache/ccache/ab/cd") == 200
