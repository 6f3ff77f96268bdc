"""Per-tenant limits in one process: headers, 429 bodies on both APIs, and
who shares a budget. Across processes: tests/e2e/test_rate_limits_redis.py."""

import base64
import socket
import threading
import time

import pytest
import redis

from app import create_app
from app.extensions import db
from app.models import CacheEntry
from app.ratelimit import rate_limits
from app.services import tenants
from tests import services_env
from tests.conftest import base_overrides
from tests.factories import bearer, make_artifact, make_tenant
from tests.live_server import free_port

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


def test_one_budget_per_tenant_across_every_route(limited_app, app):
    """The contract's budget is per tenant, not per route: cache reads (served
    before Flask), other /v8 routes and /v1 all draw on it."""
    _, key = make_tenant("acme")
    client = limited_app.test_client()
    paths = ["/v1/whoami", "/v8/artifacts/status", "/v8/artifacts/0123456789abcdef", "/v1/artifacts"]
    statuses = [client.get(paths[i % len(paths)], headers=bearer(key)).status_code for i in range(BURST + 1)]
    assert statuses[:BURST] == [200, 200, 404, 200, 200]
    assert statuses[BURST] == 429


def test_cache_reads_keep_the_per_address_limit_without_a_valid_key(limited_app, app):
    client = limited_app.test_client()
    path = "/v8/artifacts/0123456789abcdef"
    statuses = [client.head(path, headers=bearer("ak_live_" + "x" * 32)).status_code for _ in range(2)]
    statuses += [client.get(path).status_code, client.head(path).status_code]
    assert statuses == [401, 401, 401, 429]
    refused = client.get(path)
    assert refused.json["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-RateLimit-Remaining"] == "0"


def test_cache_read_headers_match_the_flask_paths(limited_app, app):
    _, key = make_tenant("acme")
    client = limited_app.test_client()
    fast = client.head("/v8/artifacts/0123456789abcdef", headers=bearer(key))
    flask_path = client.get("/v8/artifacts/status", headers=bearer(key))
    for response, remaining in ((fast, BURST - 1), (flask_path, BURST - 2)):
        assert response.headers["X-RateLimit-Limit"] == str(BURST)
        assert response.headers["X-RateLimit-Remaining"] == str(remaining)
        assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "private, no-store"


def _redis_app(app, tmp_path, strategy: str, url: str | None = None, **extra):
    if url is None:
        services_env.require(services_env.REDIS_URL, "Redis")
    overrides = base_overrides(tmp_path, app.config["SQLALCHEMY_DATABASE_URI"])
    overrides.update(
        RATELIMIT_STORAGE_URI=url or services_env.REDIS_URL,
        RATELIMIT_STRATEGY=strategy,
        RATE_LIMIT_BURST=BURST,
        RATE_LIMIT_SUSTAINED=SUSTAINED,
        RATE_LIMIT_ANONYMOUS="3 per second",
        **extra,
    )
    return create_app(overrides)


@pytest.fixture
def redis_commands(monkeypatch):
    """Every command this process sends to Redis, by name."""
    sent = []
    send = redis.Redis.execute_command

    def record(self, *args, **options):
        sent.append(str(args[0]).upper())
        return send(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", record)
    return sent


@pytest.mark.parametrize(
    "path", ["/v8/artifacts/0123456789abcdef", "/v8/artifacts/status", "/v1/whoami", "/v1/artifacts"]
)
def test_a_request_costs_one_redis_round_trip(app, tmp_path, redis_commands, path):
    """Both limits are tested, taken and read for the headers by one script,
    on the cache read path and the Flask path alike."""
    limited = _redis_app(app, tmp_path, "moving-window")
    _, key = make_tenant("acme")
    client = limited.test_client()
    client.get(path, headers=bearer(key))  # loads the script
    redis_commands.clear()
    for _ in range(3):
        response = client.get(path, headers=bearer(key))
        assert "X-RateLimit-Remaining" in response.headers
    assert redis_commands == ["EVALSHA"] * 3


BATCH = "/v1/artifacts/batch/download-urls"


def _full_batch(tenant) -> dict:
    ids = [make_artifact(tenant, bytes([i])).id for i in range(4)]
    return {"artifact_ids": ids + [f"art_{i:016d}" for i in range(20 - len(ids))]}


def test_a_batch_of_twenty_is_one_request(limited_app, app):
    tenant, key = make_tenant("acme")
    body = _full_batch(tenant)
    client = limited_app.test_client()

    responses = [client.post(BATCH, json=body, headers=bearer(key)) for _ in range(BURST + 1)]

    assert [r.status_code for r in responses] == [200] * BURST + [429]
    assert [r.headers["X-RateLimit-Remaining"] for r in responses[:BURST]] == [
        str(BURST - n) for n in range(1, BURST + 1)
    ]
    assert len(responses[0].json["download_urls"]) == 20
    assert responses[BURST].json["error"]["code"] == "rate_limited"


def test_a_batch_costs_one_redis_round_trip(app, tmp_path, redis_commands):
    limited = _redis_app(app, tmp_path, "moving-window")
    tenant, key = make_tenant("acme")
    body = _full_batch(tenant)
    client = limited.test_client()
    client.get("/v1/whoami", headers=bearer(key))  # loads the script
    redis_commands.clear()
    for _ in range(3):
        response = client.post(BATCH, json=body, headers=bearer(key))
        assert response.status_code == 200
        assert len(response.json["download_urls"]) == 20
    assert redis_commands == ["EVALSHA"] * 3


def test_switching_the_strategy_on_a_live_redis_keeps_answering(app, tmp_path):
    """Each strategy keeps its own data shape in Redis; they must never read
    each other's keys (a moving window's list read as a fixed window's
    counter fails with WRONGTYPE)."""
    _, key = make_tenant("acme")
    for strategy in ("moving-window", "fixed-window", "sliding-window-counter", "moving-window"):
        client = _redis_app(app, tmp_path, strategy).test_client()
        for path in ("/v1/whoami", "/v8/artifacts/0123456789abcdef"):
            response = client.get(path, headers=bearer(key))
            assert response.status_code in (200, 404), (strategy, response.status_code, response.get_data())
            assert response.headers["X-RateLimit-Limit"] == str(BURST)


def test_the_redis_script_enforces_both_windows(app, tmp_path, monkeypatch):
    _, key = make_tenant("acme")
    client = _redis_app(app, tmp_path, "moving-window").test_client()
    assert [r.status_code for r in _spend(client, "/v1/whoami", bearer(key), BURST + 1)] == [200] * BURST + [
        429
    ]
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 1.5)
    statuses = [r.status_code for r in _spend(client, "/v8/artifacts/status", bearer(key), BURST + 1)]
    assert statuses == [200] * BURST + [429]
    monkeypatch.setattr(time, "time", lambda: real_time() + 6)
    assert client.get("/v8/artifacts/0123456789abcdef", headers=bearer(key)).status_code == 404


def test_the_limit_header_is_per_second_when_the_sustained_window_binds(limited_app, app, monkeypatch):
    """X-RateLimit-Limit is the requests per second allowed; Remaining and
    Reset follow whichever window has the least room."""
    _, key = make_tenant("acme")
    client = limited_app.test_client()
    _spend(client, "/v1/whoami", bearer(key), BURST)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 1.5)
    allowed, *_, refused = _spend(client, "/v1/whoami", bearer(key), BURST + 1)
    # The burst window is empty again, the 5-second one holds 6 of its 10.
    assert allowed.headers["X-RateLimit-Limit"] == str(BURST)
    assert allowed.headers["X-RateLimit-Remaining"] == str(SUSTAINED * 5 - BURST - 1)
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Limit"] == str(BURST)
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert int(refused.headers["Retry-After"]) >= 3  # until the first 5 leave the 5-second window


def test_build_tools_draw_on_the_tenants_one_budget_with_basic_keys_too(limited_app, app):
    """Nx, the plain HTTP cache's fast reads and its PUTs share the tenant's
    budget with /v8 and /v1, whether the key comes as bearer or basic."""
    _, key = make_tenant("acme")
    basic = {"Authorization": "Basic " + base64.b64encode(f"gradle:{key}".encode()).decode()}
    client = limited_app.test_client()
    calls = [
        client.get("/cache/gradle/0123abcd", headers=basic),
        client.put("/cache/gradle/0123abcd", data=b"x", headers=basic),
        client.get("/v1/cache/12345", headers=bearer(key)),
        client.head("/cache/ccache/ab/cdef", headers=bearer(key)),
        client.get("/v1/whoami", headers=bearer(key)),
    ]
    assert [response.status_code for response in calls] == [404, 200, 404, 404, 200]
    for response, remaining in zip(calls, range(BURST - 1, -1, -1), strict=True):
        assert response.headers["X-RateLimit-Limit"] == str(BURST)
        assert response.headers["X-RateLimit-Remaining"] == str(remaining)
        assert response.headers["Cache-Control"] == "private, no-store"
    refused = client.get("/cache/gradle/0123abcd", headers=basic)
    assert refused.status_code == 429
    assert refused.json["code"] == "rate_limited"
    nx_refused = client.put("/v1/cache/999", data=b"x", headers=bearer(key))
    assert nx_refused.status_code == 429
    assert nx_refused.mimetype == "text/plain"


def test_rush_is_told_try_again_in_its_own_words_when_limited(limited_app, app):
    """Rush's plugin fails the build on a refused write and on any failed
    read but a 503: past the budget its read is a 503 and its write is
    declined (202, nothing stored), both with Retry-After; other tools keep
    their 429."""
    tenant, key = make_tenant("acme")
    client = limited_app.test_client()
    _spend(client, "/v1/whoami", bearer(key), BURST)

    read = client.get("/cache/rush/0123abcd", headers=bearer(key))
    assert read.status_code == 503 and read.json["code"] == "rate_limited"
    write = client.put("/cache/rush/0123abcd", data=b"task output", headers=bearer(key))
    assert write.status_code == 202
    assert write.json == {"stored": False, "code": "rate_limited", "message": write.json["message"]}
    for refused in (read, write):
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert client.put("/cache/gradle/0123abcd", data=b"x", headers=bearer(key)).status_code == 429
    with app.app_context():
        assert db.session.query(CacheEntry).filter_by(tenant_id=tenant.id).count() == 0


def test_rush_writes_are_declined_while_the_rate_limit_store_is_down(app, tmp_path):
    _, key = make_tenant("acme")
    dead = f"redis://127.0.0.1:{free_port()}/0"
    client = _redis_app(app, tmp_path, "moving-window", url=dead).test_client()
    write = client.put("/cache/rush/0123abcd", data=b"task output", headers=bearer(key))
    assert write.status_code == 202 and write.json["code"] == "service_unavailable"
    assert client.get("/cache/rush/0123abcd", headers=bearer(key)).status_code == 503
    assert client.put("/cache/gradle/0123abcd", data=b"x", headers=bearer(key)).status_code == 503


def test_health_checks_the_shared_rate_limit_store(app, tmp_path):
    response = _redis_app(app, tmp_path, "moving-window").test_client().get("/health")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "storage": "ok", "rate_limits": "ok"}


def test_an_unreachable_rate_limit_store_answers_503_and_stores_nothing(app, tmp_path):
    """Nothing listens on the port: every limited request is refused with each
    API's own 503 shape, never a stack trace, and /health says which part."""
    tenant, key = make_tenant("acme")
    dead = f"redis://127.0.0.1:{free_port()}/0"
    client = _redis_app(app, tmp_path, "moving-window", url=dead).test_client()

    whoami = client.get("/v1/whoami", headers=bearer(key))
    assert whoami.status_code == 503
    assert whoami.json["error"]["code"] == "service_unavailable"

    for method in ("get", "head"):
        read = getattr(client, method)("/v8/artifacts/0123456789abcdef", headers=bearer(key))
        assert read.status_code == 503, method
    put = client.put(
        "/v8/artifacts/0123456789abcdef",
        data=b"bytes",
        headers={**bearer(key), "Content-Type": "application/octet-stream"},
    )
    assert put.status_code == 503
    assert put.json["error"]["code"] == "service_unavailable"
    assert "Traceback" not in put.get_data(as_text=True)

    health = client.get("/health")
    assert health.status_code == 503
    assert health.json["status"] == "degraded"
    assert health.json["checks"] == {"database": "ok", "storage": "ok", "rate_limits": "failed"}

    # Nothing was stored: the working store serves a miss for the hash.
    working = app.test_client()
    assert working.get("/v8/artifacts/0123456789abcdef", headers=bearer(key)).status_code == 404


def test_a_redis_that_stops_answering_is_a_503_not_a_held_thread(app, tmp_path):
    """The kernel completes the connection into the listening socket's
    backlog, and nothing ever answers: without timeouts every request (and
    its thread) would wait until the kernel gave up on the connection."""
    tenant, key = make_tenant("acme")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        limited = _redis_app(app, tmp_path, "moving-window", url=url, RATELIMIT_REDIS_TIMEOUT_SECONDS=0.2)
        pool = rate_limits(limited).limiter.storage.get_connection().connection_pool
        assert pool.connection_kwargs["socket_timeout"] == 0.2
        assert pool.connection_kwargs["socket_connect_timeout"] == 0.2
        client = limited.test_client()
        answers = {}

        def ask():
            answers["whoami"] = client.get("/v1/whoami", headers=bearer(key))
            answers["read"] = client.get("/v8/artifacts/0123456789abcdef", headers=bearer(key))
            answers["health"] = client.get("/health")

        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        asking.join(timeout=120)  # a guard against a hang, not a measurement
        assert not asking.is_alive(), "a request is still waiting on the silent Redis"

    assert answers["whoami"].status_code == 503
    assert answers["whoami"].json["error"]["code"] == "service_unavailable"
    assert answers["read"].status_code == 503
    assert answers["health"].status_code == 503
    assert answers["health"].json["checks"]["rate_limits"] == "failed"
