"""Per-tenant limits in one process: headers, 429 bodies on both APIs, and
who shares a budget. Across processes: tests/e2e/test_rate_limits_redis.py."""

import time

import pytest

from app import create_app
from app.extensions import db
from app.services import tenants
from tests.conftest import base_overrides
from tests.factories import bearer, make_tenant

BURST = 5
SUSTAINED = 2  # enforced as 10 per 5 seconds


@pytest.fixture
def limited_app(app, tmp_path):
    """A second app on the same database with small limits and fresh counters."""
    overrides = base_overrides(tmp_path, app.config["SQLALCHEMY_DATABASE_URI"])
    overrides.update(
        RATE_LIMIT_BURST=BURST,
        RATE_LIMIT_SUSTAINED=SUSTAINED,
        RATE_LIMIT_ANONYMOUS="3 per second",
        RATE_LIMIT_PUBLIC="3 per second",
    )
    limited = create_app(overrides)
    yield limited
    with limited.app_context():
        db.engine.dispose()


def _spend(client, path, headers, count):
    return [client.get(path, headers=headers) for _ in range(count)]


def test_v1_limit_headers_and_429_envelope(limited_app, app):
    _, key = make_tenant("acme")
    client = limited_app.test_client()
    responses = _spend(client, "/v1/whoami", bearer(key), BURST + 1)
    ok, refused = responses[:BURST], responses[BURST]
    assert [r.status_code for r in ok] == [200] * BURST
    first = ok[0]
    assert first.headers["X-RateLimit-Limit"] == str(BURST)
    assert first.headers["X-RateLimit-Remaining"] == str(BURST - 1)
    assert int(first.headers["X-RateLimit-Reset"]) > 0
    assert "Retry-After" not in first.headers
    assert refused.status_code == 429
    retry_after = int(refused.headers["Retry-After"])
    assert retry_after >= 1
    error = refused.json["error"]
    assert error["code"] == "rate_limited"
    assert error["status"] == 429
    assert error["retry_after_seconds"] == retry_after
    assert error["retry_after"] == retry_after
    assert refused.headers["X-RateLimit-Remaining"] == "0"


def test_v8_429_has_the_cache_api_shape(limited_app, app):
    _, key = make_tenant("acme")
    client = limited_app.test_client()
    responses = _spend(client, "/v8/artifacts/status", bearer(key), BURST + 1)
    refused = responses[-1]
    assert refused.status_code == 429
    assert refused.json["code"] == "rate_limited"
    assert refused.json["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1


def test_keys_of_one_tenant_share_a_budget_and_tenants_do_not(limited_app, app):
    tenant, first_key = make_tenant("acme")
    _, second_key = tenants.create_key(tenant)
    _, other_key = make_tenant("other")
    client = limited_app.test_client()
    statuses = [
        client.get("/v1/whoami", headers=bearer(key)).status_code for key in [first_key, second_key] * 3
    ]
    assert statuses == [200] * BURST + [429]
    assert client.get("/v1/whoami", headers=bearer(other_key)).status_code == 200


def test_sustained_limit_refuses_after_the_burst_window(limited_app, app, monkeypatch):
    """10 per 5 s: after the 1-second window passes, the 5-second one still binds."""
    _, key = make_tenant("acme")
    client = limited_app.test_client()
    assert [r.status_code for r in _spend(client, "/v1/whoami", bearer(key), BURST)] == [200] * BURST
    # Move the limiter's clock past the burst window instead of sleeping.
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 1.5)
    statuses = [r.status_code for r in _spend(client, "/v1/whoami", bearer(key), BURST + 1)]
    assert statuses == [200] * BURST + [429]


def test_unauthenticated_requests_are_limited_per_address(limited_app, app):
    client = limited_app.test_client()
    bad = bearer("ak_live_" + "x" * 32)
    statuses = [client.get("/v1/whoami", headers=bad).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    other_address = client.get(
        "/v1/whoami", headers=bad, environ_base={"REMOTE_ADDR": "10.9.9.9"}
    ).status_code
    assert other_address == 401


def test_health_is_not_limited(limited_app, app):
    client = limited_app.test_client()
    assert {client.get("/health").status_code for _ in range(10)} == {200}
