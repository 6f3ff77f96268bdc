"""The build cache's figures per tenant and period: turbo's events, /v8
requests and bytes, rolled up per hour; `flask tenants stats` and the
console's overview read the same rows."""

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import UsageHour
from app.services import insight, tool_cache, usage
from tests import clock
from tests.factories import bearer, make_tenant

# Every test here moves bytes: it runs on S3 storage too.
pytestmark = pytest.mark.storage


def _events(client, auth, events, **headers):
    session_id = str(uuid.uuid4())
    body = [{"sessionId": session_id, **event} for event in events]
    answer = client.post("/v8/artifacts/events", json=body, headers={**auth, **headers})
    assert answer.status_code == 200, answer.get_data(as_text=True)


def _stats(runner, slug, period="30d"):
    result = runner.invoke(args=["tenants", "stats", slug, "--period", period])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_cache_traffic_is_counted_per_tenant(client, runner, auth):
    _, other_key = make_tenant("other")
    client.put("/v8/artifacts/aaa111", data=b"x" * 1000, headers=auth)
    assert client.get("/v8/artifacts/aaa111", headers=auth).status_code == 200
    assert client.get("/v8/artifacts/aaa111", headers=auth).status_code == 200
    assert client.get("/v8/artifacts/missing1", headers=auth).status_code == 404
    assert client.head("/v8/artifacts/aaa111", headers=auth).status_code == 200
    assert client.get("/v8/artifacts/aaa111", headers=bearer(other_key)).status_code == 404
    _events(
        client,
        auth,
        [
            {"source": "REMOTE", "event": "HIT", "hash": "aaa111", "duration": 1500},
            {"source": "REMOTE", "event": "HIT", "hash": "aaa111", "duration": 500},
            {"source": "REMOTE", "event": "MISS", "hash": "ccc333"},
            {"source": "LOCAL", "event": "HIT", "hash": "bbb222", "duration": 250},
            {"source": "LOCAL", "event": "MISS", "hash": "bbb222"},
        ],
        **{"x-artifact-client-ci": "GITHUB_ACTIONS"},
    )

    stats = _stats(runner, "acme")
    assert stats["requests"] == {"hits": 2, "misses": 1, "uploads": 1}  # HEAD serves nothing
    assert stats["bytes_served"] == 2000
    assert stats["bytes_uploaded"] == 1000
    assert stats["reported_events"] == {
        "remote_hits": 2,
        "remote_misses": 1,
        "local_hits": 1,
        "local_misses": 1,
        "ci": 5,
        "interactive": 0,
        "other": 0,
    }
    assert stats["remote_hit_rate"] == round(2 / 3, 4)
    assert stats["local_hit_rate"] == 0.5
    assert stats["time_saved_ms"] == {"remote": 2000, "local": 250, "total": 2250}
    assert (stats["cache_entries"], stats["cache_bytes"]) == (1, 1000)
    assert stats["period"] == "30d"
    assert stats["start"].endswith("T00:00:00Z")

    other = _stats(runner, "other")
    assert other["requests"] == {"hits": 0, "misses": 1, "uploads": 0}
    assert other["reported_events"]["remote_hits"] == 0
    assert other["bytes_uploaded"] == 0


def test_events_are_counted_by_origin(client, runner, auth):
    hit = [{"source": "REMOTE", "event": "HIT", "hash": "aaa111", "duration": 10}]
    _events(client, auth, hit, **{"x-artifact-client-ci": "BUILDKITE"})
    _events(client, auth, hit * 2, **{"x-artifact-client-interactive": "1"})
    _events(client, auth, hit * 3, **{"x-artifact-client-interactive": "0"})
    _events(client, auth, hit * 4)
    events = _stats(runner, "acme", "24h")["reported_events"]
    assert (events["ci"], events["interactive"], events["other"]) == (1, 2, 7)


def test_periods_cover_whole_hours_and_days(app, client, runner, auth, tenant):
    _events(client, auth, [{"source": "REMOTE", "event": "HIT", "hash": "aaa111", "duration": 700}])
    day = insight.overview(tenant, "24h")
    assert (day.bucket, len(day.series)) == ("hour", 24)
    assert day.start == day.series[0].start and day.start.minute == 0
    assert day.series[-1].remote_hits == 1  # the current hour is the last point
    assert day.totals.remote_saved_ms == 700
    month = insight.overview(tenant, "30d")
    assert (month.bucket, len(month.series)) == ("day", 30)
    assert (month.start.hour, month.start.minute) == (0, 0)
    assert month.series[-1].remote_hits == 1
    assert (len(insight.overview(tenant, "7d").series), len(insight.overview(tenant, "90d").series)) == (
        168,
        90,
    )

    clock.advance(timedelta(days=2))
    assert insight.overview(tenant, "24h").totals.remote_hits == 0
    week = insight.overview(tenant, "7d")
    assert week.totals.remote_hits == 1
    assert week.series[-49].remote_hits == 1  # 48 hours and a part ago
    clock.advance(timedelta(days=8))
    assert insight.overview(tenant, "7d").totals.remote_hits == 0
    assert _stats(runner, "acme", "30d")["time_saved_ms"]["remote"] == 700
    clock.advance(timedelta(days=25))
    assert _stats(runner, "acme", "30d")["time_saved_ms"]["remote"] == 0
    assert _stats(runner, "acme", "90d")["time_saved_ms"]["remote"] == 700


def test_the_cli_and_the_overview_agree(app, client, runner, auth, tenant):
    client.put("/v8/artifacts/aaa111", data=b"x" * 123, headers=auth)
    client.get("/v8/artifacts/aaa111", headers=auth)
    _events(client, auth, [{"source": "LOCAL", "event": "HIT", "hash": "aaa111", "duration": 1234}])
    for period in insight.PERIODS:
        stats = _stats(runner, "acme", period)
        view = insight.overview(tenant, period)
        assert stats["time_saved_ms"]["local"] == view.totals.local_saved_ms == 1234
        assert stats["bytes_served"] == view.totals.bytes_served == 123
        assert stats["requests"]["uploads"] == view.totals.uploads == 1
        assert stats["start"] == view.start.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_unknown_period_is_refused(runner, tenant):
    result = runner.invoke(args=["tenants", "stats", "acme", "--period", "1y"])
    assert result.exit_code != 0
    assert "1y" in result.output


def test_entries_by_size_reads_and_eviction_order(app, client, auth, tenant):
    client.put("/v8/artifacts/big1", data=b"x" * 5000, headers=auth)
    clock.advance(timedelta(hours=1))
    client.put("/v8/artifacts/small1", data=b"x" * 10, headers=auth)
    client.put("/v8/artifacts/mid1", data=b"x" * 100, headers=auth)
    for _ in range(3):
        assert client.get("/v8/artifacts/small1", headers=auth).status_code == 200
    assert client.get("/v8/artifacts/mid1", headers=auth).status_code == 200
    client.head("/v8/artifacts/mid1", headers=auth)  # a HEAD refreshes, but is not a GET served

    assert [row.hash for row in insight.largest_entries(tenant)] == ["big1", "mid1", "small1"]
    most_read = insight.most_read_entries(tenant)
    assert [(row.hash, row.read_count) for row in most_read] == [("small1", 3), ("mid1", 1), ("big1", 0)]
    soon = insight.evicting_soon(tenant, limit=2)
    assert [row.hash for row in soon] == ["big1", "small1"]  # unread the longest first
    assert soon[0].evicts_at == soon[0].last_read_at + timedelta(days=tenant.cache_retention_days)


def test_absurd_durations_count_a_day_each_and_never_overflow(client, runner, auth):
    """A client may claim 2^53 ms saved per hit, a thousand hits a batch:
    each counts as a day, and later batches of that hour still succeed."""
    day_ms = 24 * 3600 * 1000
    absurd = [{"source": "REMOTE", "event": "HIT", "hash": "aaa111", "duration": 2**53 - 1}] * 600
    _events(client, auth, absurd)
    _events(client, auth, absurd)
    _events(client, auth, [{"source": "REMOTE", "event": "HIT", "hash": "aaa111", "duration": 5000}])
    saved = _stats(runner, "acme", "24h")["time_saved_ms"]
    assert saved["remote"] == 1200 * day_ms + 5000


def test_hour_and_month_counters_stop_at_their_ceiling(app, tenant):
    """Whatever is added, a counter stays at its ceiling instead of
    overflowing its 64-bit column (which would fail every later flush), and
    90 days of ceilings for every tool still sum without overflow."""
    hour = clock.now().replace(minute=0, second=0, microsecond=0)
    with db.engine.begin() as connection:
        for _ in range(3):
            usage.add_hour(connection, tenant.id, hour, {"remote_saved_ms": 2**62, "bytes_served": 2**62})
            usage.add_hour(connection, tenant.id, hour, {"remote_saved_ms": 1})
            usage._add(connection, tenant.id, usage.current_month(), {"cache_bytes_served": 2**62})
    row = db.session.scalars(select(UsageHour).where(UsageHour.tenant_id == tenant.id)).one()
    assert row.remote_saved_ms == row.bytes_served == usage.HOUR_COUNTER_CEILING
    assert usage.month_usage(tenant)["cache_bytes_served"] == usage.MONTH_COUNTER_CEILING
    rows_in_a_quarter = 90 * 24 * (1 + len(tool_cache.TOOLS))
    assert usage.HOUR_COUNTER_CEILING * rows_in_a_quarter < 2**63
