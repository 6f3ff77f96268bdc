"""/metrics in one process: who may read it, and what each kind of traffic adds
to which series. Across gunicorn's workers: tests/e2e/test_metrics_workers.py."""

import io
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import create_app, metrics
from app.extensions import db
from app.services import gc
from tests import clock
from tests.conftest import RequestScopedClient, base_overrides
from tests.factories import bearer, make_tenant
from tests.live_server import free_port

TOKEN = "metrics-test-token"
SCRAPE = {"Authorization": f"Bearer {TOKEN}"}
READ_ROUTE = "/v8/artifacts/<path:artifact_hash>"


def scrape(client) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape, by name and sorted labels."""
    response = client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200, response.get_data(as_text=True)
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def make_metrics_app(app, tmp_path, **settings):
    """A second app on the same database, with metrics on (or as `settings` say)."""
    overrides = base_overrides(tmp_path, app.config["SQLALCHEMY_DATABASE_URI"])
    for key in ("STORAGE_BACKEND", "STORAGE_LOCAL_ROOT", "S3_BUCKET", "S3_ENDPOINT_URL", "S3_REGION"):
        overrides[key] = app.config[key]
    overrides.update({"METRICS_ENABLED": True, "METRICS_TOKEN": TOKEN, **settings})
    made = create_app(overrides)
    made.test_client_class = RequestScopedClient
    return made


@pytest.fixture
def metrics_app(app, tmp_path):
    made = make_metrics_app(app, tmp_path)
    yield made
    with made.app_context():
        db.engine.dispose()


@pytest.fixture
def metrics_client(metrics_app):
    return metrics_app.test_client()


@pytest.mark.parametrize(
    "settings, headers, status",
    [
        ({"METRICS_TOKEN": None}, SCRAPE, 404),  # unset: no such route
        ({"METRICS_ENABLED": False}, SCRAPE, 404),  # instrumentation off
        ({}, {}, 401),
        ({}, {"Authorization": "Basic " + TOKEN}, 401),
        ({}, {"Authorization": "Bearer wrong-token"}, 403),
        ({}, {"Authorization": "Bearer " + TOKEN + "x"}, 403),
        ({}, SCRAPE, 200),
    ],
)
def test_the_token_decides(app, tmp_path, settings, headers, status):
    made = make_metrics_app(app, tmp_path, **settings)
    try:
        response = made.test_client().get("/metrics", headers=headers)
    finally:
        with made.app_context():
            db.engine.dispose()
    assert response.status_code == status
    if status == 200:
        assert response.content_type.startswith("text/plain")
        assert "hoard_http_requests_total" in response.get_data(as_text=True)
    else:
        assert response.get_json()["error"]["code"] in ("not_found", "unauthorized", "forbidden")
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_the_scraper_is_never_limited_and_guesses_are(app, tmp_path):
    made = make_metrics_app(app, tmp_path, RATE_LIMIT_ANONYMOUS="2 per day")
    try:
        client = made.test_client()
        assert [client.get("/metrics", headers=SCRAPE).status_code for _ in range(5)] == [200] * 5
        guesses = [client.get("/metrics", headers=bearer("guess")).status_code for _ in range(4)]
    finally:
        with made.app_context():
            db.engine.dispose()
    assert guesses == [403, 403, 429, 429]


def test_the_scraper_is_served_while_the_rate_limit_store_is_down(app, tmp_path):
    """Prometheus needs its figures most when a part is down; a guess still
    needs the limiter, and gets its 503."""
    made = make_metrics_app(app, tmp_path, RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{free_port()}/0")
    try:
        client = made.test_client()
        scraped = client.get("/metrics", headers=SCRAPE)
        guessed = client.get("/metrics", headers=bearer("guess"))
    finally:
        with made.app_context():
            db.engine.dispose()
    assert scraped.status_code == 200 and "hoard_http_requests_total" in scraped.get_data(as_text=True)
    assert guessed.status_code == 503


def test_requests_are_counted_by_api_route_method_and_status_class(metrics_client, auth):
    artifact_hash = "feedface0123456789"
    before = scrape(metrics_client)
    assert (
        metrics_client.put(f"/v8/artifacts/{artifact_hash}", data=b"x" * 10, headers=auth).status_code == 202
    )
    assert metrics_client.get(f"/v8/artifacts/{artifact_hash}", headers=auth).status_code == 200
    assert metrics_client.head(f"/v8/artifacts/{artifact_hash}", headers=auth).status_code == 200
    assert metrics_client.get("/v8/artifacts/beef0000", headers=auth).status_code == 404
    assert metrics_client.get("/v1/artifacts", headers=auth).status_code == 200
    assert metrics_client.get("/no/such/path/deadbeef").status_code == 404
    assert metrics_client.get("/health").status_code == 200
    after = scrape(metrics_client)

    def added(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    total = "hoard_http_requests_total"
    assert added(total, api="v8", route="/v8/artifacts/<path:artifact_hash>", method="PUT", status="2xx") == 1
    assert added(total, api="v8", route=READ_ROUTE, method="GET", status="2xx") == 1
    assert added(total, api="v8", route=READ_ROUTE, method="HEAD", status="2xx") == 1
    assert added(total, api="v8", route=READ_ROUTE, method="GET", status="4xx") == 1
    assert added(total, api="v1", route="/v1/artifacts", method="GET", status="2xx") == 1
    assert added(total, api="other", route="unmatched", method="GET", status="4xx") == 1
    assert added(total, api="other", route="/health", method="GET", status="2xx") == 1
    # The scrape before this one.
    assert added(total, api="metrics", route="/metrics", method="GET", status="2xx") == 1
    duration = "hoard_http_request_duration_seconds_count"
    assert added(duration, api="v8", route=READ_ROUTE, method="GET") == 2
    assert added("hoard_cache_lookups_total", api="v8", method="GET", result="hit") == 1
    assert added("hoard_cache_lookups_total", api="v8", method="HEAD", result="hit") == 1
    assert added("hoard_cache_lookups_total", api="v8", method="GET", result="miss") == 1
    assert added("hoard_uploaded_bytes_total", api="v8") == 10
    assert added("hoard_served_bytes_total", api="v8") == 10


def test_labels_hold_no_hashes_ids_or_keys(metrics_client, auth, tenant):
    artifact_hash = "abcdef9876543210"
    metrics_client.put(f"/v8/artifacts/{artifact_hash}", data=b"y", headers=auth)
    metrics_client.get(f"/v8/artifacts/{artifact_hash}", headers=auth)
    uploaded = metrics_client.post("/v1/artifacts", data={"file": (io.BytesIO(b"z"), "f.bin")}, headers=auth)
    artifact_id = uploaded.get_json()["artifact_id"]
    metrics_client.get(f"/v1/artifacts/{artifact_id}", headers=auth)
    metrics_client.get("/v1/blobs/not-a-token")
    text = metrics_client.get("/metrics", headers=SCRAPE).get_data(as_text=True)
    for secret in (artifact_hash, artifact_id, tenant.id, auth["Authorization"][7:], "not-a-token"):
        assert secret not in text
    assert 'route="/v1/artifacts/<artifact_id>"' in text
    assert 'api="public",method="GET",route="/v1/blobs/<token>",status="4xx"' in text
    for family in text_string_to_metric_families(text):
        if family.name.startswith("hoard_"):
            assert family.name == family.name.lower()
            if family.type == "counter":
                assert any(sample.name.endswith("_total") for sample in family.samples) or not family.samples


def test_rate_limited_and_aborted_uploads(app, tmp_path, auth):
    # One request per tenant per second (the scrapes, keyless, are not charged to it).
    made = make_metrics_app(app, tmp_path, RATE_LIMIT_BURST=1)
    client = made.test_client()
    try:
        before = scrape(client)
        # The body stops short of its Content-Length (the client went away).
        response = client.put(
            "/v8/artifacts/cafe0001",
            input_stream=io.BytesIO(b"xx"),
            headers=auth,
            environ_overrides={"CONTENT_LENGTH": "4"},
        )
        assert response.status_code == 400
        assert client.get("/v1/artifacts", headers=auth).status_code == 429
        after = scrape(client)
    finally:
        with made.app_context():
            db.engine.dispose()
    name = "hoard_rate_limited_requests_total"
    assert value(after, name, api="v1", limit="tenant") - value(before, name, api="v1", limit="tenant") == 1
    name = "hoard_uploads_aborted_total"
    labels = {"api": "v8", "reason": "disconnected"}
    assert value(after, name, **labels) - value(before, name, **labels) == 1


def test_metrics_off_counts_nothing(app, tmp_path, auth):
    made = make_metrics_app(app, tmp_path, METRICS_ENABLED=False)
    on = make_metrics_app(app, tmp_path)
    try:
        before = scrape(on.test_client())
        client = made.test_client()
        client.put("/v8/artifacts/abc123", data=b"q", headers=auth)
        client.get("/v8/artifacts/abc123", headers=auth)
        after = scrape(on.test_client())
    finally:
        for each in (made, on):
            with each.app_context():
                db.engine.dispose()
    counted = ("hoard_http_requests", "hoard_cache", "hoard_served", "hoard_uploaded")
    for (name, labels), sample in after.items():
        if name.startswith(counted) and dict(labels).get("api") == "v8":
            assert sample == before.get((name, labels), 0.0), name


def test_storage_per_tenant_and_totals(app, tmp_path, metrics_client, auth, tenant):
    other, other_key = make_tenant("globex")
    metrics_client.put("/v8/artifacts/aaaa1111", data=b"a" * 7, headers=auth)
    metrics_client.put("/v8/artifacts/aaaa2222", data=b"b" * 5, headers=auth)
    metrics_client.post(
        "/v1/artifacts", data={"file": (io.BytesIO(b"c" * 3), "f")}, headers=bearer(other_key)
    )
    samples = scrape(metrics_client)
    assert value(samples, "hoard_tenants") == 2
    assert value(samples, "hoard_tenant_storage_bytes", tenant="acme", kind="cache") == 12
    assert value(samples, "hoard_tenant_storage_objects", tenant="acme", kind="cache") == 2
    assert value(samples, "hoard_tenant_storage_objects", tenant="acme", kind="blobs") == 0
    assert value(samples, "hoard_tenant_storage_bytes", tenant="globex", kind="blobs") == 3
    assert value(samples, "hoard_tenant_storage_objects", tenant="globex", kind="blobs") == 1
    assert value(samples, "hoard_storage_bytes", kind="cache") == 12
    assert value(samples, "hoard_storage_objects", kind="blobs") == 1

    # Over the cap: the totals alone, no tenant label at all.
    capped = make_metrics_app(app, tmp_path, METRICS_TENANT_LABEL_LIMIT=1)
    try:
        samples = scrape(capped.test_client())
    finally:
        with capped.app_context():
            db.engine.dispose()
    assert value(samples, "hoard_tenants") == 2
    assert value(samples, "hoard_storage_bytes", kind="cache") == 12
    assert value(samples, "hoard_storage_objects", kind="cache") == 2
    assert not [key for key in samples if key[0].startswith("hoard_tenant_storage")]


def test_gc_runs_reach_metrics_from_another_process_through_the_database(metrics_client, auth, tenant):
    metrics_client.put("/v8/artifacts/0ld0001", data=b"o" * 9, headers=auth)
    before = scrape(metrics_client)
    clock.advance(timedelta(days=tenant.cache_retention_days + 1))
    gc.collect(now=clock.now())
    gc.collect(now=clock.now(), dry_run=True)  # not a run that removed anything
    gc.collect(now=clock.now())
    after = scrape(metrics_client)
    assert value(after, "hoard_gc_runs_total") - value(before, "hoard_gc_runs_total") == 2
    removed = ("hoard_gc_removed_objects_total", {"category": "cache_expired"})
    assert value(after, removed[0], **removed[1]) - value(before, removed[0], **removed[1]) == 1
    freed = ("hoard_gc_removed_bytes_total", {"category": "cache_expired"})
    assert value(after, freed[0], **freed[1]) - value(before, freed[0], **freed[1]) == 9
    assert value(after, "hoard_gc_last_run_timestamp_seconds") > 0
    assert value(after, "hoard_storage_objects", kind="cache") == 0


@pytest.mark.parametrize(
    "path, api",
    [
        ("/v8/artifacts/0123abcd", "v8"),
        ("/v8/artifacts", "v8"),
        ("/v1/artifacts/art_123", "v1"),
        ("/v1/cache/0123abcd", "nx"),
        ("/cache/ccache/ab/cdef", "cache"),
        ("/v1/uploads/tok", "public"),
        ("/v1/blobs/tok", "public"),
        ("/dl/lnk_1", "public"),
        ("/metrics", "metrics"),
        ("/health", "other"),
        ("/../etc/passwd", "other"),
        ("", "other"),
    ],
)
def test_api_label_comes_from_a_fixed_table(path, api):
    assert metrics.api_for_path(path) == api
