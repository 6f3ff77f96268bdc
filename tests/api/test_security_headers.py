"""The headers every response carries (app/headers.py): nosniff always; a
sandbox policy and `attachment` on downloads of uploaded bytes; `private,
no-store` on answers to keyed requests. One matrix over routes, outcomes and
credentials, redirects and errors included."""

from urllib.parse import urlsplit

import pytest
from flask import Response

from app import create_app, headers
from app.extensions import db
from tests.api.helpers_v1 import create, download_path, make_link, path_of, reserve
from tests.conftest import base_overrides
from tests.factories import bearer

pytestmark = pytest.mark.storage

HASH = "0123456789abcdef"
NOSNIFF = ("X-Content-Type-Options", "nosniff")
SANDBOX = ("Content-Security-Policy", "sandbox")
PRIVATE = ("Cache-Control", "private, no-store")
UNKNOWN_KEY = bearer("ak_live_" + "0" * 32)


@pytest.fixture
def made(client, auth):
    """An artifact, a link and a signed URL to it, and a cache entry."""
    artifact = create(client, auth, b"<html><script>alert(1)</script>", filename="page.html")
    assert client.put(f"/v8/artifacts/{HASH}", data=b"cache bytes", headers=auth).status_code == 202
    upload_url = reserve(client, auth).get_json()["upload_url"]
    return {
        "id": artifact["artifact_id"],
        "link": path_of(make_link(client, auth, artifact["artifact_id"]).get_json()["url"]),
        "blob": download_path(client, auth, artifact["artifact_id"]),
        # With S3 storage the upload URL is S3's own: nothing of Hoard's to check.
        "upload": path_of(upload_url) if urlsplit(upload_url).netloc == "localhost" else None,
    }


def _is_private(response) -> bool:
    return response.headers.get("Cache-Control") == PRIVATE[1]


# (label, method, path, headers: "key" / "none" / "unknown", expected status)
MATRIX = [
    ("v8 status", "GET", "/v8/artifacts/status", "key", 200),
    ("v8 download", "GET", f"/v8/artifacts/{HASH}", "key", 200),
    ("v8 head", "HEAD", f"/v8/artifacts/{HASH}", "key", 200),
    ("v8 miss", "GET", "/v8/artifacts/fedcba9876543210", "key", 404),
    ("v8 bad hash", "GET", "/v8/artifacts/a..b%00", "key", 400),
    ("v8 no key", "GET", f"/v8/artifacts/{HASH}", "none", 401),
    ("v8 unknown key", "GET", f"/v8/artifacts/{HASH}", "unknown", 401),
    ("v8 wrong method", "DELETE", f"/v8/artifacts/{HASH}", "key", 405),
    ("v8 preflight", "OPTIONS", f"/v8/artifacts/{HASH}", "none", 200),
    ("v1 get", "GET", "/v1/artifacts/{id}", "key", 200),
    ("v1 list", "GET", "/v1/artifacts", "key", 200),
    ("v1 download-url", "GET", "/v1/artifacts/{id}/download-url", "key", 200),
    ("v1 whoami", "GET", "/v1/whoami", "key", 200),
    ("v1 missing", "GET", "/v1/artifacts/art_0000000000000000", "key", 404),
    ("v1 bad limit", "GET", "/v1/artifacts?limit=0", "key", 400),
    ("v1 no key", "GET", "/v1/whoami", "none", 401),
    ("link", "GET", "{link}", "none", 200),
    ("link head", "HEAD", "{link}", "none", 200),
    ("link with a key", "GET", "{link}", "key", 200),
    ("unknown link", "GET", "/dl/lnk_00000000000000000000", "none", 404),
    ("signed blob", "GET", "{blob}", "none", 200),
    ("signed blob head", "HEAD", "{blob}", "none", 200),
    ("forged blob", "GET", "/v1/blobs/not-a-token", "none", 403),
    ("signed upload", "PUT", "{upload}", "none", 200),
    ("health", "GET", "/health", "none", 200),
    ("openapi", "GET", "/openapi.json", "none", 200),
    ("no such route", "GET", "/nowhere", "none", 404),
    ("no such route with a key", "GET", "/v1/nowhere", "key", 404),
]
# Answers from the routes that serve uploaded bytes, errors included: the
# rule goes by route, so a browser never gets an unsandboxed page there.
DOWNLOAD_ROUTES = {
    "v8 download",
    "v8 head",
    "v8 miss",
    "v8 bad hash",
    "v8 no key",
    "v8 unknown key",
    "link",
    "link head",
    "link with a key",
    "unknown link",
    "signed blob",
    "signed blob head",
    "forged blob",
}


@pytest.mark.parametrize(("label", "method", "path", "who", "status"), MATRIX, ids=[row[0] for row in MATRIX])
def test_every_response_carries_the_headers_its_kind_needs(
    client, auth, made, label, method, path, who, status
):
    if path == "{upload}" and made["upload"] is None:
        pytest.skip("S3 receives presigned uploads itself")
    credentials = {"key": auth, "none": {}, "unknown": UNKNOWN_KEY}[who]
    data = b"hello" if method == "PUT" else None

    response = client.open(path.format(**made), method=method, headers=credentials, data=data)

    assert response.status_code == status, response.data[:300]
    assert response.headers.get(NOSNIFF[0]) == NOSNIFF[1]
    assert _is_private(response) == (who == "key"), response.headers.get("Cache-Control")
    if label in DOWNLOAD_ROUTES:
        assert response.headers.get(SANDBOX[0]) == SANDBOX[1]
    else:
        assert SANDBOX[0] not in response.headers


@pytest.mark.parametrize("which", ["link", "blob"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("byte_range", [None, "bytes=0-3"])
def test_downloads_of_uploaded_bytes_are_attachments(client, made, which, method, byte_range):
    headers = {"Range": byte_range} if byte_range else {}

    response = client.open(made[which], method=method, headers=headers)

    assert response.status_code == (206 if byte_range else 200)
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers[SANDBOX[0]] == SANDBOX[1]
    assert response.headers[NOSNIFF[0]] == NOSNIFF[1]


def test_errors_on_download_routes_carry_the_headers(client, auth, made):
    unsatisfiable = client.get(made["link"], headers={"Range": "bytes=500-600"})
    client.delete(f"/v1/artifacts/{made['id']}", headers=auth)
    gone = client.get(made["blob"])

    for response, status in ((unsatisfiable, 416), (gone, 410)):
        assert response.status_code == status
        assert response.headers[NOSNIFF[0]] == NOSNIFF[1]
        assert response.headers[SANDBOX[0]] == SANDBOX[1]


def test_an_unexpected_error_carries_the_headers(client, auth, monkeypatch):
    from app.services import cache

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(cache, "cache_status", broken)

    response = client.get("/v8/artifacts/status", headers=auth)

    assert response.status_code == 500
    assert response.headers[NOSNIFF[0]] == NOSNIFF[1]
    assert _is_private(response)


def test_a_rate_limited_answer_carries_the_headers(app, auth, tmp_path):
    # Limits are read when the app is made: a second app on the same database.
    limited = create_app(
        {**base_overrides(tmp_path, app.config["SQLALCHEMY_DATABASE_URI"]), "RATE_LIMIT_BURST": 1}
    )
    client = limited.test_client()

    statuses = [client.get("/v1/whoami", headers=auth) for _ in range(2)]
    with limited.app_context():
        db.engine.dispose()

    assert [r.status_code for r in statuses] == [200, 429]
    assert statuses[1].headers[NOSNIFF[0]] == NOSNIFF[1]
    assert _is_private(statuses[1])


def test_a_presigned_redirect_carries_the_headers(app, client, auth, made, monkeypatch):
    if app.config["STORAGE_BACKEND"] != "s3":
        pytest.skip("presigned redirects need an object store (the postgresql-s3 variant)")
    monkeypatch.setitem(app.config, "DOWNLOAD_MODE", "redirect")

    cached = client.get(f"/v8/artifacts/{HASH}", headers=auth)
    linked = client.get(made["link"])

    assert (cached.status_code, linked.status_code) == (302, 302)
    for response in (cached, linked):
        assert response.headers[NOSNIFF[0]] == NOSNIFF[1]
        assert response.headers[SANDBOX[0]] == SANDBOX[1]
    assert _is_private(cached) and not _is_private(linked)
    # The store serves the bytes itself, as an attachment.
    assert "response-content-disposition=attachment" in linked.headers["Location"]


def test_a_keyed_answer_replaces_a_cache_policy_a_view_set(app):
    response = Response(headers={"Cache-Control": "public, max-age=31536000, immutable"})
    with app.test_request_context("/v8/artifacts/status", headers=UNKNOWN_KEY):
        headers._apply(response)
    assert response.headers["Cache-Control"] == PRIVATE[1]

    response = Response(headers={"Cache-Control": "public, max-age=60"})
    with app.test_request_context("/health"):
        headers._apply(response)
    assert response.headers["Cache-Control"] == "public, max-age=60"


@pytest.mark.parametrize("authenticated", [False, True])
@pytest.mark.parametrize("uploaded_content", [False, True])
def test_the_rule_needs_no_app_or_request(authenticated, uploaded_content):
    rule = headers.security_headers(authenticated=authenticated, uploaded_content=uploaded_content)

    assert NOSNIFF in rule
    assert (SANDBOX in rule) == uploaded_content
    assert (PRIVATE in rule) == authenticated
    rule.clear()  # the caller's own list: the next caller still gets the headers
    assert NOSNIFF in headers.security_headers(authenticated=authenticated, uploaded_content=uploaded_content)
