"""The /v8 Turborepo remote cache API, per ../shared/specs/cache-v8.md."""

import io
import re
import string
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import CacheEntry, CacheEvent
from app.services import tenants
from tests import clock
from tests.factories import bearer, make_tenant
from tests.storage_probe import stored_files, upload_leftovers

# Every test here moves bytes: it runs on S3 storage too.
pytestmark = pytest.mark.storage

HASH = "0123456789abcdef"
OTHER_HASH = "fedcba9876543210"
BODY = bytes(range(256)) * 40  # every byte value; an opaque archive
METADATA = {
    "x-artifact-duration": "1234",
    "x-artifact-tag": "c2lnbmF0dXJlK29mL3RoZS9hcnRpZmFjdD0=",
    "x-artifact-sha": "9f2c1e0d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e",
    "x-artifact-dirty-hash": "d1r7yd1r7yd1r7y",
}
TURBO_HEADERS = [
    "authorization",
    "content-type",
    "user-agent",
    "x-artifact-duration",
    "x-artifact-tag",
    "x-artifact-sha",
    "x-artifact-dirty-hash",
    "x-artifact-client-ci",
    "x-artifact-client-interactive",
]


# ---------------------------------------------------------------- helpers


def put(client, auth, artifact_hash=HASH, body=BODY, headers=None, query=""):
    return client.put(
        f"/v8/artifacts/{artifact_hash}{query}",
        data=body,
        headers={**auth, "Content-Type": "application/octet-stream", **(headers or {})},
    )


def put_chunked(client, auth, artifact_hash, body, headers=None):
    """A PUT without Content-Length, framed as a server that decodes chunked
    transfer encoding hands it to the app (gunicorn sets wsgi.input_terminated)."""
    return client.put(
        f"/v8/artifacts/{artifact_hash}",
        input_stream=io.BytesIO(body),
        headers={**auth, "Transfer-Encoding": "chunked", **(headers or {})},
        environ_overrides={"wsgi.input_terminated": True},
    )


def query(client, auth, payload, qs=""):
    return client.post(f"/v8/artifacts{qs}", json=payload, headers=auth)


def event(**overrides):
    return {"sessionId": str(uuid.uuid4()), "source": "REMOTE", "event": "HIT", "hash": HASH, **overrides}


def assert_error(response, status: int, code: str | None = None) -> dict:
    """A /v8 error: JSON, both the flat and the nested shape, same values."""
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    if response.request.method == "HEAD":
        assert response.data == b""
        return {}
    body = response.get_json()
    assert set(body) == {"code", "message", "error"}
    assert body["error"] == {"code": body["code"], "message": body["message"]}
    assert isinstance(body["message"], str) and body["message"]
    if code is not None:
        assert body["code"] == code
    return body


def storage_root(app) -> Path:
    return Path(app.config["STORAGE_LOCAL_ROOT"])


def entry_row(tenant_id: str, artifact_hash: str) -> CacheEntry | None:
    db.session.expire_all()
    return db.session.get(CacheEntry, (tenant_id, artifact_hash))


def event_count() -> int:
    return db.session.scalar(select(func.count()).select_from(CacheEvent))


@pytest.fixture
def globex():
    """A second tenant: (tenant, auth headers)."""
    other, key = make_tenant("globex")
    return other, bearer(key)


# ---------------------------------------------------------------- PUT / GET / HEAD


def test_put_accepts_with_202_and_the_artifact_url(client, auth):
    response = put(client, auth, headers=METADATA)

    assert response.status_code == 202
    assert response.mimetype == "application/json"
    assert response.get_json() == {"urls": [f"http://localhost/v8/artifacts/{HASH}"]}


def test_the_artifact_url_uses_the_public_base_url(client, auth, app, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", "https://cache.example.com")

    response = put(client, auth)

    assert response.get_json() == {"urls": [f"https://cache.example.com/v8/artifacts/{HASH}"]}


def test_get_returns_the_exact_bytes_and_every_stored_header(client, auth):
    put(client, auth, headers=METADATA)

    response = client.get(f"/v8/artifacts/{HASH}", headers={**auth, "Accept-Encoding": "gzip, br"})

    assert response.status_code == 200
    assert response.data == BODY
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Length"] == str(len(BODY))
    assert "Content-Encoding" not in response.headers
    for name, value in METADATA.items():
        assert response.headers[name] == value


def test_head_answers_the_get_headers_without_a_body(client, auth):
    put(client, auth, headers=METADATA)
    get = client.get(f"/v8/artifacts/{HASH}", headers=auth)

    head = client.head(f"/v8/artifacts/{HASH}", headers=auth)

    assert head.status_code == 200
    assert head.data == b""
    assert "Content-Encoding" not in head.headers
    for name in ("Content-Type", "Content-Length", *METADATA):
        assert head.headers[name] == get.headers[name]


def test_duration_is_always_returned_even_when_none_was_sent(client, auth):
    put(client, auth, body=b"archive")

    for response in (
        client.get(f"/v8/artifacts/{HASH}", headers=auth),
        client.head(f"/v8/artifacts/{HASH}", headers=auth),
    ):
        assert response.headers["x-artifact-duration"] == "0"
        for name in ("x-artifact-tag", "x-artifact-sha", "x-artifact-dirty-hash"):
            assert name not in response.headers


def test_empty_artifact_round_trips(client, auth):
    assert put(client, auth, body=b"").status_code == 202

    response = client.get(f"/v8/artifacts/{HASH}", headers=auth)

    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Content-Length"] == "0"


def test_put_records_metadata_and_client_context(client, auth, tenant):
    put(client, auth, headers={**METADATA, "x-artifact-client-ci": "github-actions"})
    put(
        client,
        auth,
        OTHER_HASH,
        headers={"x-artifact-client-interactive": "1"},
    )

    ci = entry_row(tenant.id, HASH)
    assert (ci.size_bytes, ci.duration_ms, ci.tag) == (len(BODY), 1234, METADATA["x-artifact-tag"])
    assert (ci.git_sha, ci.dirty_hash) == (METADATA["x-artifact-sha"], METADATA["x-artifact-dirty-hash"])
    assert (ci.client_ci, ci.client_interactive) == ("github-actions", None)
    assert ci.created_at is not None and ci.last_read_at is not None
    interactive = entry_row(tenant.id, OTHER_HASH)
    assert (interactive.client_ci, interactive.client_interactive) == (None, True)


@pytest.mark.parametrize(
    "headers",
    [
        {"x-artifact-duration": "fast"},
        {"x-artifact-duration": "-5"},
        {"x-artifact-client-interactive": "maybe"},
        {"x-artifact-client-ci": "c" * 51},
        {"x-artifact-tag": "t" * 1025},
    ],
    ids=["duration-not-int", "duration-negative", "interactive-not-flag", "ci-too-long", "tag-too-long"],
)
def test_put_with_a_malformed_header_is_400_and_stores_nothing(client, auth, app, headers):
    assert_error(put(client, auth, headers=headers), 400, "invalid_request")

    assert_error(client.get(f"/v8/artifacts/{HASH}", headers=auth), 404)
    assert stored_files(app) == []


def test_re_put_replaces_body_and_metadata_together(client, auth, app):
    put(client, auth, headers=METADATA)
    new_body = b"second version, shorter"

    response = put(client, auth, body=new_body, headers={"x-artifact-duration": "7"})

    assert response.status_code == 202
    got = client.get(f"/v8/artifacts/{HASH}", headers=auth)
    assert got.data == new_body
    assert got.headers["Content-Length"] == str(len(new_body))
    assert got.headers["x-artifact-duration"] == "7"
    for name in ("x-artifact-tag", "x-artifact-sha", "x-artifact-dirty-hash"):
        assert name not in got.headers
    found = query(client, auth, {"hashes": [HASH]}).get_json()
    assert found[HASH]["size"] == len(new_body)
    assert found[HASH]["taskDurationMs"] == 7
    # The earlier version's object is gone, not orphaned.
    assert [p.read_bytes() for p in stored_files(app)] == [new_body]


def test_a_download_under_way_finishes_with_the_version_it_started(client, auth):
    put(client, auth)
    streaming = client.get(f"/v8/artifacts/{HASH}", headers=auth, buffered=False)

    put(client, auth, body=b"replacement")

    try:
        assert b"".join(streaming.response) == BODY
    finally:
        streaming.close()
    assert client.get(f"/v8/artifacts/{HASH}", headers=auth).data == b"replacement"


def test_an_entry_whose_object_vanished_is_a_miss_not_a_fault(client, auth, app):
    put(client, auth)
    for path in stored_files(app):
        path.unlink()

    assert_error(client.get(f"/v8/artifacts/{HASH}", headers=auth), 404)


def test_missing_artifact_is_a_json_404(client, auth):
    assert_error(client.get(f"/v8/artifacts/{HASH}", headers=auth), 404)
    assert_error(client.head(f"/v8/artifacts/{HASH}", headers=auth), 404)


def test_reads_refresh_last_read_at_at_most_once_per_interval(client, auth, tenant, app):
    put(client, auth)
    written = entry_row(tenant.id, HASH).last_read_at

    client.get(f"/v8/artifacts/{HASH}", headers=auth)
    assert entry_row(tenant.id, HASH).last_read_at == written

    clock.advance(timedelta(seconds=app.config["CACHE_READ_TOUCH_SECONDS"] + 1))
    client.head(f"/v8/artifacts/{HASH}", headers=auth)
    assert entry_row(tenant.id, HASH).last_read_at > written


# ---------------------------------------------------------------- hashes


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_hash_ending_in_a_newline_is_malformed(client, auth, method):
    # A regex `$` matches before a trailing newline; the rule must not.
    assert_error(client.open(f"/v8/artifacts/{HASH}%0A", method=method, headers=auth), 400, "invalid_request")
    answer = query(client, auth, {"hashes": [HASH + "\n"]})
    assert answer.get_json()[HASH + "\n"] == {"error": {"message": "invalid hash"}}


@pytest.mark.parametrize(
    "path",
    [
        "..",
        ".",
        "a/b",
        "a%2Fb",
        "%2e%2e",
        "%2E%2E",
        "..%2F..%2Fetc",
        "a" * 129,
        "a" * 300,
        "a b",
        "a%20b",
        "abc%00",
        "caf%C3%A9",
        "abc/",
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT"])
def test_a_malformed_hash_is_a_json_400(client, auth, app, method, path):
    response = client.open(f"/v8/artifacts/{path}", method=method, headers=auth, data=b"x")

    assert_error(response, 400, "invalid_request")
    assert stored_files(app) == []


@pytest.mark.parametrize(
    "artifact_hash",
    [
        ((string.ascii_letters + string.digits + "_.-") * 2)[:128],
        "-",
        "_",
        "...",
        "a.b",
        "A",
    ],
    ids=["128-chars", "dash", "underscore", "three-dots", "dotted", "one-char"],
)
def test_every_allowed_hash_round_trips(client, auth, artifact_hash):
    body = artifact_hash.encode() * 3

    assert put(client, auth, artifact_hash, body).status_code == 202

    assert client.get(f"/v8/artifacts/{artifact_hash}", headers=auth).data == body
    assert client.head(f"/v8/artifacts/{artifact_hash}", headers=auth).status_code == 200
    assert query(client, auth, {"hashes": [artifact_hash]}).get_json()[artifact_hash]["size"] == len(body)


# ---------------------------------------------------------------- query


def test_query_reports_present_missing_and_malformed_hashes(client, auth):
    put(client, auth, headers=METADATA)
    put(client, auth, OTHER_HASH, b"untagged", headers={"x-artifact-duration": "5"})

    response = query(client, auth, {"hashes": [HASH, OTHER_HASH, "0000000000000000", "../x"]})

    assert response.status_code == 200
    result = response.get_json()
    assert list(result) == [HASH, OTHER_HASH, "0000000000000000", "../x"]
    assert result[HASH] == {"size": len(BODY), "taskDurationMs": 1234, "tag": METADATA["x-artifact-tag"]}
    assert result[OTHER_HASH]["size"] == len(b"untagged")
    assert result[OTHER_HASH]["taskDurationMs"] == 5
    assert result["0000000000000000"] is None
    assert isinstance(result["../x"]["error"]["message"], str)


def test_query_accepts_100_hashes(client, auth):
    hashes = [f"{n:016x}" for n in range(100)]

    response = query(client, auth, {"hashes": hashes})

    assert response.status_code == 200
    assert response.get_json() == dict.fromkeys(hashes)


@pytest.mark.parametrize(
    "payload",
    [
        {"hashes": []},
        {"hashes": [f"{n:016x}" for n in range(101)]},
        {"hashes": HASH},
        {"hashes": [HASH, 7]},
        {"hashes": None},
        {},
        [HASH],
        [],
        "hashes",
        42,
        None,
    ],
    ids=[
        "zero",
        "101",
        "string-not-list",
        "non-string-item",
        "null-hashes",
        "no-hashes",
        "array-body",
        "empty-array",
        "string-body",
        "number-body",
        "null-body",
    ],
)
def test_query_rejects_a_malformed_body(client, auth, payload):
    assert_error(query(client, auth, payload), 400, "invalid_request")


@pytest.mark.parametrize("data", [b"", b"{not json", b"\xff\xfe"], ids=["empty", "broken", "not-utf8"])
def test_query_rejects_a_body_that_is_not_json(client, auth, data):
    response = client.post("/v8/artifacts", data=data, headers={**auth, "Content-Type": "application/json"})

    assert_error(response, 400, "invalid_request")


# ---------------------------------------------------------------- status


def test_status_is_enabled_by_default(client, auth):
    response = client.get("/v8/artifacts/status", headers=auth)

    assert response.status_code == 200
    assert response.get_json() == {"status": "enabled"}


@pytest.mark.parametrize("cache_status", ["disabled", "paused"])
def test_status_reports_an_operator_setting(client, auth, tenant, cache_status):
    tenants.update_tenant(tenant, cache_status=cache_status)

    response = client.get("/v8/artifacts/status", headers=auth)

    assert response.status_code == 200
    assert response.get_json() == {"status": cache_status}


def test_status_is_over_limit_past_the_storage_quota(client, auth, tenant):
    put(client, auth, body=b"x" * 100)
    tenants.update_tenant(tenant, storage_quota_bytes=100)
    assert client.get("/v8/artifacts/status", headers=auth).get_json() == {"status": "enabled"}

    tenants.update_tenant(tenant, storage_quota_bytes=99)

    assert client.get("/v8/artifacts/status", headers=auth).get_json() == {"status": "over_limit"}


# ---------------------------------------------------------------- disabled, paused, over quota


def _cache_calls():
    return [
        ("PUT", f"/v8/artifacts/{OTHER_HASH}", {"data": b"new"}),
        ("GET", f"/v8/artifacts/{HASH}", {}),
        ("HEAD", f"/v8/artifacts/{HASH}", {}),
        ("POST", "/v8/artifacts", {"json": {"hashes": [HASH]}}),
    ]


@pytest.mark.parametrize(("method", "path", "kwargs"), _cache_calls(), ids=["put", "get", "head", "query"])
@pytest.mark.parametrize(
    ("setting", "code"),
    [
        ({"cache_status": "disabled"}, "remote_caching_disabled"),
        ({"cache_status": "paused"}, "paused"),
        ({"storage_quota_bytes": 1}, "over_limit"),
    ],
    ids=["disabled", "paused", "over-quota"],
)
def test_an_unusable_cache_answers_403_with_the_code_turbo_understands(
    client, auth, tenant, method, path, kwargs, setting, code
):
    put(client, auth)
    tenants.update_tenant(tenant, **setting)

    response = client.open(path, method=method, headers=auth, **kwargs)

    if code == "over_limit" and method != "PUT":
        # Over the quota the cache stops growing but still serves what it holds.
        assert response.status_code == 200
        return
    assert response.status_code == 403
    if method != "HEAD":
        assert assert_error(response, 403)["code"] == code
    assert entry_row(tenant.id, OTHER_HASH) is None


def test_a_put_that_would_exceed_the_quota_is_over_limit(client, auth, tenant):
    put(client, auth, body=b"x" * 60)
    tenants.update_tenant(tenant, storage_quota_bytes=100)

    assert_error(put(client, auth, OTHER_HASH, b"y" * 41), 403, "over_limit")
    assert put(client, auth, OTHER_HASH, b"y" * 40).status_code == 202


@pytest.mark.storage
def test_a_chunked_put_is_held_to_the_quota_as_it_streams(app, client, auth, tenant):
    """Without Content-Length nothing is known up front: the body is cut off
    once it passes the room left, and nothing of it is kept."""
    tenants.update_tenant(tenant, storage_quota_bytes=100_000)

    assert_error(put_chunked(client, auth, HASH, b"x" * 3_000_000), 403, "over_limit")
    assert entry_row(tenant.id, HASH) is None
    assert stored_files(app) == [] and upload_leftovers(app) == []

    assert put_chunked(client, auth, HASH, b"y" * 60_000).status_code == 202
    assert_error(put_chunked(client, auth, OTHER_HASH, b"z" * 40_001), 403, "over_limit")
    assert put_chunked(client, auth, OTHER_HASH, b"z" * 40_000).status_code == 202
    assert [len(p.read_bytes()) for p in stored_files(app)] in ([60_000, 40_000], [40_000, 60_000])


def test_replacing_an_artifact_counts_only_the_growth_against_the_quota(client, auth, tenant):
    put(client, auth, body=b"x" * 60)
    tenants.update_tenant(tenant, storage_quota_bytes=100)

    response = put(client, auth, body=b"z" * 70)

    assert response.status_code == 202
    assert client.get(f"/v8/artifacts/{HASH}", headers=auth).data == b"z" * 70


# ---------------------------------------------------------------- events


def test_events_are_stored_with_the_client_context(client, auth, tenant):
    session_id = str(uuid.uuid4())
    batch = [
        {"sessionId": session_id, "source": "REMOTE", "event": "HIT", "hash": HASH, "duration": 1500},
        {"sessionId": session_id, "source": "LOCAL", "event": "MISS", "hash": OTHER_HASH},
    ]

    response = client.post(
        "/v8/artifacts/events",
        json=batch,
        headers={**auth, "x-artifact-client-ci": "buildkite", "x-artifact-client-interactive": "0"},
    )

    assert response.status_code == 200
    assert response.data == b""
    rows = db.session.scalars(select(CacheEvent).order_by(CacheEvent.id)).all()
    assert [(r.tenant_id, r.session_id, r.source, r.event, r.hash, r.duration_ms) for r in rows] == [
        (tenant.id, session_id, "REMOTE", "HIT", HASH, 1500),
        (tenant.id, session_id, "LOCAL", "MISS", OTHER_HASH, None),
    ]
    assert {(r.client_ci, r.client_interactive) for r in rows} == {("buildkite", False)}


def test_an_empty_batch_is_fine(client, auth):
    response = client.post("/v8/artifacts/events", json=[], headers=auth)

    assert response.status_code == 200
    assert event_count() == 0


@pytest.mark.parametrize(
    "session_id",
    [
        "{12345678-1234-5678-1234-567812345678}",
        "12345678123456781234567812345678",
        "urn:uuid:12345678-1234-5678-1234-567812345678",
        "12345678-1234-5678-1234-567812345678".upper(),
        "-" * 100 + "12345678123456781234567812345678",
    ],
    ids=["braces", "bare-hex", "urn", "upper", "padded"],
)
def test_event_session_ids_are_stored_in_canonical_form(client, auth, session_id):
    response = client.post("/v8/artifacts/events", json=[event(sessionId=session_id)], headers=auth)

    assert response.status_code == 200
    assert db.session.scalar(select(CacheEvent.session_id)) == "12345678-1234-5678-1234-567812345678"


@pytest.mark.parametrize(
    "bad",
    [
        "not an object",
        {"source": "REMOTE", "event": "HIT", "hash": HASH},
        event(sessionId="not-a-uuid"),
        event(sessionId=12345),
        event(source="CLOUD"),
        event(event="hit"),
        event(hash=None),
        event(hash="../etc"),
        event(duration=-1),
        event(duration="10"),
        event(duration=True),
    ],
    ids=[
        "not-object",
        "no-session",
        "bad-session",
        "numeric-session",
        "bad-source",
        "bad-event",
        "no-hash",
        "bad-hash",
        "negative-duration",
        "string-duration",
        "bool-duration",
    ],
)
def test_a_malformed_event_names_its_index_and_nothing_is_stored(client, auth, bad):
    batch = [event(), event(event="MISS"), bad, event()]

    response = client.post("/v8/artifacts/events", json=batch, headers=auth)

    body = assert_error(response, 400, "invalid_request")
    assert re.search(r"\b2\b", body["message"])
    assert event_count() == 0


@pytest.mark.parametrize(
    "data",
    [b"", b"{}", b'{"events": []}', b'"HIT"', b"[{"],
    ids=["empty", "object", "wrapped", "string", "broken"],
)
def test_events_body_must_be_a_json_array(client, auth, data):
    response = client.post(
        "/v8/artifacts/events", data=data, headers={**auth, "Content-Type": "application/json"}
    )

    assert_error(response, 400, "invalid_request")
    assert event_count() == 0


def test_events_reject_a_malformed_client_header(client, auth):
    response = client.post(
        "/v8/artifacts/events", json=[event()], headers={**auth, "x-artifact-client-interactive": "yes"}
    )

    assert_error(response, 400, "invalid_request")
    assert event_count() == 0


# ---------------------------------------------------------------- preflight


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v8/artifacts", "POST"),
        ("/v8/artifacts/status", "GET"),
        ("/v8/artifacts/events", "POST"),
        (f"/v8/artifacts/{HASH}", "PUT"),
        (f"/v8/artifacts/{HASH}", "GET"),
        (f"/v8/artifacts/{HASH}?teamId=team_x&slug=acme", "PUT"),
    ],
)
def test_preflight_allows_turbo_to_send_its_token_and_headers(client, path, method):
    response = client.options(
        path,
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": ", ".join(TURBO_HEADERS),
        },
    )

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"]
    allowed_methods = {m.strip().upper() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert method in allowed_methods
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert set(TURBO_HEADERS) <= allowed
    assert "Location" not in response.headers


# ---------------------------------------------------------------- team scoping


@pytest.mark.parametrize(
    "qs",
    [
        "",
        "?teamId={id}",
        "?slug={slug}",
        "?teamId={slug}",
        "?slug={id}",
        "?teamId={id}&slug={slug}",
        "?teamId={slug}&slug={id}",
    ],
    ids=["neither", "team-id", "slug", "slug-as-team-id", "id-as-slug", "both", "both-swapped"],
)
def test_the_keys_own_team_may_be_named_by_id_or_slug(client, auth, tenant, qs):
    qs = qs.format(id=tenant.id, slug=tenant.slug)

    assert put(client, auth, query=qs).status_code == 202

    assert client.get(f"/v8/artifacts/status{qs}", headers=auth).get_json() == {"status": "enabled"}
    assert client.get(f"/v8/artifacts/{HASH}{qs}", headers=auth).data == BODY
    assert client.head(f"/v8/artifacts/{HASH}{qs}", headers=auth).status_code == 200
    assert query(client, auth, {"hashes": [HASH]}, qs).get_json()[HASH]["size"] == len(BODY)
    assert client.post(f"/v8/artifacts/events{qs}", json=[event()], headers=auth).status_code == 200
    # One namespace whatever the team was called.
    assert client.get(f"/v8/artifacts/{HASH}", headers=auth).data == BODY


@pytest.mark.parametrize(
    "qs",
    [
        "?teamId=team_doesnotexist",
        "?slug=someone-else",
        "?slug={other_slug}",
        "?teamId={other_id}",
        "?slug={other_id}",
        "?teamId={id}&slug={other_slug}",
        "?teamId={other_id}&slug={slug}",
        "?slug=",
    ],
    ids=[
        "unknown-id",
        "unknown-slug",
        "other-slug",
        "other-id",
        "other-id-as-slug",
        "own-id-foreign-slug",
        "foreign-id-own-slug",
        "empty-slug",
    ],
)
def test_naming_another_team_is_403_naming_the_keys_team(client, auth, tenant, globex, qs):
    other, _ = globex
    qs = qs.format(id=tenant.id, slug=tenant.slug, other_id=other.id, other_slug=other.slug)

    response = client.get(f"/v8/artifacts/status{qs}", headers=auth)

    body = assert_error(response, 403)
    assert body["code"] not in ("remote_caching_disabled", "over_limit", "paused")
    assert "acme" in body["message"]
    assert tenant.id in body["message"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("PUT", f"/v8/artifacts/{HASH}", {"data": b"x"}),
        ("GET", f"/v8/artifacts/{HASH}", {}),
        ("HEAD", f"/v8/artifacts/{HASH}", {}),
        ("POST", "/v8/artifacts", {"json": {"hashes": [HASH]}}),
        ("POST", "/v8/artifacts/events", {"json": [event()]}),
        ("GET", "/v8/artifacts/status", {}),
    ],
    ids=["put", "get", "head", "query", "events", "status"],
)
def test_every_endpoint_refuses_a_foreign_team(client, auth, tenant, globex, method, path, kwargs):
    other, other_auth = globex
    put(client, other_auth, body=b"globex's")

    response = client.open(f"{path}?slug={other.slug}", method=method, headers=auth, **kwargs)

    assert response.status_code == 403
    assert response.mimetype == "application/json"
    assert entry_row(tenant.id, HASH) is None
    assert client.get(f"/v8/artifacts/{HASH}", headers=other_auth).data == b"globex's"
    assert event_count() == 0


# ---------------------------------------------------------------- authentication


ENDPOINTS = [
    ("GET", "/v8/artifacts/status", {}),
    ("POST", "/v8/artifacts", {"json": {"hashes": [HASH]}}),
    ("POST", "/v8/artifacts/events", {"json": [event()]}),
    ("PUT", f"/v8/artifacts/{HASH}", {"data": b"x"}),
    ("GET", f"/v8/artifacts/{HASH}", {}),
    ("HEAD", f"/v8/artifacts/{HASH}", {}),
]
ENDPOINT_IDS = ["status", "query", "events", "put", "get", "head"]


def _revoked_key_header(tenant) -> dict:
    api_key, plaintext = tenants.create_key(tenant)
    tenants.revoke_key(tenant, api_key.id)
    return bearer(plaintext)


CREDENTIALS = {
    "missing": lambda tenant, key: {},
    "empty-bearer": lambda tenant, key: {"Authorization": "Bearer "},
    "basic-scheme": lambda tenant, key: {"Authorization": f"Basic {key}"},
    "malformed": lambda tenant, key: {"Authorization": "Bearer not-a-hoard-key"},
    "unknown": lambda tenant, key: bearer("ak_live_" + "Z" * 32),
    "truncated": lambda tenant, key: bearer(key[:-1]),
    "revoked": lambda tenant, key: _revoked_key_header(tenant),
}


@pytest.mark.parametrize(("method", "path", "kwargs"), ENDPOINTS, ids=ENDPOINT_IDS)
@pytest.mark.parametrize("credential", list(CREDENTIALS))
def test_every_endpoint_requires_a_valid_key(client, app, tenant_and_key, method, path, kwargs, credential):
    tenant, key = tenant_and_key
    headers = CREDENTIALS[credential](tenant, key)

    response = client.open(path, method=method, headers=headers, **kwargs)

    assert_error(response, 401, None if method == "HEAD" else "unauthorized")
    assert stored_files(app) == []
    assert event_count() == 0


def test_a_revoked_key_stops_working_at_once(client, tenant):
    api_key, plaintext = tenants.create_key(tenant)
    assert client.get("/v8/artifacts/status", headers=bearer(plaintext)).status_code == 200

    tenants.revoke_key(tenant, api_key.id)

    assert_error(client.get("/v8/artifacts/status", headers=bearer(plaintext)), 401, "unauthorized")


# ---------------------------------------------------------------- errors are JSON


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v8/nothing-here"),
        ("GET", "/v8/artifacts/"),
        ("DELETE", f"/v8/artifacts/{HASH}"),
        ("PATCH", "/v8/artifacts/status"),
        ("GET", "/v8/artifacts"),
    ],
)
def test_routing_errors_under_v8_use_the_v8_shape(client, auth, method, path):
    response = client.open(path, method=method, headers=auth)

    assert response.status_code in (404, 405)
    assert_error(response, response.status_code)


# ---------------------------------------------------------------- tenant isolation


def _read(client, headers, artifact_hash, operation):
    if operation == "get":
        return client.get(f"/v8/artifacts/{artifact_hash}", headers=headers)
    if operation == "head":
        return client.head(f"/v8/artifacts/{artifact_hash}", headers=headers)
    return query(client, headers, {"hashes": [artifact_hash]})


def _comparable(response, artifact_hash):
    body = response.data.replace(artifact_hash.encode(), b"<hash>")
    return response.status_code, response.mimetype, body


@pytest.mark.parametrize("operation", ["get", "head", "query"])
def test_another_tenants_artifact_looks_exactly_like_a_missing_one(client, auth, globex, operation):
    _, other_auth = globex
    put(client, auth, headers=METADATA)

    foreign = _read(client, other_auth, HASH, operation)
    missing = _read(client, other_auth, OTHER_HASH, operation)

    assert _comparable(foreign, HASH) == _comparable(missing, OTHER_HASH)
    assert foreign.status_code == (200 if operation == "query" else 404)
    assert not any(name.lower().startswith("x-artifact-") for name, _ in foreign.headers.items())


def test_two_tenants_store_the_same_hash_independently(client, auth, tenant, globex):
    other, other_auth = globex
    put(client, auth, headers=METADATA)

    assert (
        put(client, other_auth, body=b"globex bytes", headers={"x-artifact-duration": "9"}).status_code == 202
    )

    mine = client.get(f"/v8/artifacts/{HASH}", headers=auth)
    theirs = client.get(f"/v8/artifacts/{HASH}", headers=other_auth)
    assert (mine.data, mine.headers["x-artifact-duration"], mine.headers["x-artifact-tag"]) == (
        BODY,
        "1234",
        METADATA["x-artifact-tag"],
    )
    assert (theirs.data, theirs.headers["x-artifact-duration"]) == (b"globex bytes", "9")
    assert "x-artifact-tag" not in theirs.headers
    assert query(client, auth, {"hashes": [HASH]}).get_json()[HASH]["size"] == len(BODY)
    assert query(client, other_auth, {"hashes": [HASH]}).get_json()[HASH]["size"] == len(b"globex bytes")
    assert entry_row(tenant.id, HASH).size_bytes == len(BODY)
    assert entry_row(other.id, HASH).size_bytes == len(b"globex bytes")


# ---------------------------------------------------------------- size limits


class ReadTracker(io.BytesIO):
    """A request body that remembers whether the server read any of it."""

    bytes_read = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk

    def readinto(self, buffer):
        count = super().readinto(buffer)
        self.bytes_read += count
        return count


@pytest.fixture
def small_max(app, monkeypatch):
    monkeypatch.setitem(app.config, "CACHE_MAX_ARTIFACT_BYTES", 1000)
    return 1000


def test_an_announced_length_over_the_max_is_413_before_reading(client, auth, app, small_max):
    body = ReadTracker(b"x" * (small_max + 1))

    response = client.put(
        f"/v8/artifacts/{HASH}",
        input_stream=body,
        headers={**auth, "Content-Type": "application/octet-stream"},
    )

    assert_error(response, 413, "file_too_large")
    assert body.bytes_read == 0
    assert stored_files(app) == [] and upload_leftovers(app) == []


def test_a_body_of_exactly_the_max_is_accepted(client, auth, small_max):
    assert put(client, auth, body=b"m" * small_max).status_code == 202
    assert client.get(f"/v8/artifacts/{HASH}", headers=auth).data == b"m" * small_max


def test_a_streamed_body_is_stored(client, auth):
    response = put_chunked(client, auth, HASH, BODY, headers={"x-artifact-duration": "3"})

    assert response.status_code == 202
    got = client.get(f"/v8/artifacts/{HASH}", headers=auth)
    assert got.data == BODY
    assert got.headers["Content-Length"] == str(len(BODY))


def test_a_streamed_body_over_the_max_is_413_and_stores_nothing(client, auth, app, small_max):
    put(client, auth, body=b"previous")

    response = put_chunked(client, auth, HASH, b"y" * (small_max + 1), headers={"x-artifact-duration": "1"})

    assert_error(response, 413, "file_too_large")
    got = client.get(f"/v8/artifacts/{HASH}", headers=auth)
    assert (got.data, got.headers["x-artifact-duration"]) == (b"previous", "0")
    assert [p.read_bytes() for p in stored_files(app)] == [b"previous"]
    assert upload_leftovers(app) == []


def test_a_body_shorter_than_its_content_length_stores_nothing(client, auth, app):
    put(client, auth, body=b"previous")

    response = client.put(
        f"/v8/artifacts/{HASH}",
        data=b"truncated",
        headers=auth,
        environ_overrides={"CONTENT_LENGTH": "1000"},
    )

    assert_error(response, 400, "invalid_request")
    assert client.get(f"/v8/artifacts/{HASH}", headers=auth).data == b"previous"
    assert [p.read_bytes() for p in stored_files(app)] == [b"previous"]
    assert upload_leftovers(app) == []


def test_no_object_is_written_outside_the_tenant_namespace(client, auth, app, tenant):
    put(client, auth)
    put(client, auth, "...")

    for stored in stored_files(app):
        assert stored.key.split("/")[:2] == ["cache", tenant.id]
    if app.config["STORAGE_BACKEND"] == "local":
        root = storage_root(app)
        assert all(
            (root / stored.key).resolve().is_relative_to(root.resolve()) for stored in stored_files(app)
        )
