"""Reading and changing one artifact: get, download-url and the signed blob
URL, delete, extend-ttl; and tenant isolation across every per-artifact route."""

import base64
import re
from datetime import timedelta
from urllib.parse import unquote

import pytest

from app.models import Artifact
from tests import clock
from tests.api import helpers_v1 as v1
from tests.api.helpers_v1 import (
    MISSING_ID,
    assert_artifact,
    assert_error,
    count_rows,
    create,
    download_path,
    make_link,
    put_bytes,
    reserve,
    ts,
    wire,
)

# Every test here moves bytes: it runs on S3 storage too.
pytestmark = pytest.mark.storage


DATA = b"0123456789abcdef"


# ---------------------------------------------------------------- get


def test_get_returns_every_field(client, auth):
    made = create(client, auth, DATA, filename="a.txt", metadata={"k": "v"}, session_id="s", agent_id="x")

    response = client.get(f"/v1/artifacts/{made['artifact_id']}", headers=auth)

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert assert_artifact(response.get_json()) == made


def test_get_includes_pending_artifacts(client, auth):
    ticket = reserve(client, auth, size=9).get_json()
    body = client.get(f"/v1/artifacts/{ticket['artifact_id']}", headers=auth).get_json()
    assert_artifact(body, status="pending", content_hash=None, size_bytes=9, filename="big.bin")


@pytest.mark.parametrize(
    "artifact_id", [MISSING_ID, "art_short", "nope", "ART_0000000000000000", "art_000000000000000%21"]
)
def test_get_unknown_is_404(client, auth, artifact_id):
    assert_error(client.get(f"/v1/artifacts/{artifact_id}", headers=auth), 404, "artifact_not_found")


def test_get_deleted_is_410(client, auth):
    made = create(client, auth)
    client.delete(f"/v1/artifacts/{made['artifact_id']}", headers=auth)
    assert_error(
        client.get(f"/v1/artifacts/{made['artifact_id']}", headers=auth), 410, "artifact_already_deleted"
    )


def test_get_expired_is_410(client, auth):
    made = create(client, auth, ttl="1h")
    clock.advance(timedelta(minutes=59))
    assert client.get(f"/v1/artifacts/{made['artifact_id']}", headers=auth).status_code == 200
    clock.advance(timedelta(minutes=1, seconds=1))
    assert_error(client.get(f"/v1/artifacts/{made['artifact_id']}", headers=auth), 410, "artifact_expired")


def test_deleted_wins_over_expired(client, auth):
    made = create(client, auth, ttl="1h")
    client.delete(f"/v1/artifacts/{made['artifact_id']}", headers=auth)
    clock.advance(timedelta(hours=2))
    assert_error(
        client.get(f"/v1/artifacts/{made['artifact_id']}", headers=auth), 410, "artifact_already_deleted"
    )


# ---------------------------------------------------------------- download-url and the signed URL


def test_download_url_fields(client, auth):
    made = create(client, auth, DATA, filename="data.bin", content_type="application/x-thing")

    response = client.get(f"/v1/artifacts/{made['artifact_id']}/download-url", headers=auth)

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"download_url", "expires_in", "filename", "content_type", "size_bytes"}
    assert body["download_url"].startswith("http://localhost/v1/blobs/")
    assert body["expires_in"] == 3600
    assert (body["filename"], body["content_type"], body["size_bytes"]) == (
        "data.bin",
        "application/x-thing",
        16,
    )


def test_the_signed_url_serves_the_bytes_without_auth(client, auth):
    made = create(client, auth, DATA, filename="data.bin", content_type="application/x-thing")
    path = download_path(client, auth, made["artifact_id"])

    for _ in range(2):  # any number of times while valid
        got = client.get(path)
        assert got.status_code == 200
        assert got.data == DATA
        assert got.headers["Content-Type"] == "application/x-thing"
        assert got.headers["Content-Length"] == "16"
        assert got.headers["Content-Disposition"].startswith("attachment;")
        assert got.headers["Accept-Ranges"] == "bytes"

    head = client.head(path)
    assert head.status_code == 200
    assert head.data == b""
    assert head.headers["Content-Length"] == "16"
    assert head.headers["Content-Type"] == "application/x-thing"
    assert head.headers["Content-Disposition"] == got.headers["Content-Disposition"]


@pytest.mark.parametrize(
    ("header", "status", "body", "content_range"),
    [
        ("bytes=2-5", 206, DATA[2:6], "bytes 2-5/16"),
        ("bytes=10-", 206, DATA[10:], "bytes 10-15/16"),
        ("bytes=-3", 206, DATA[-3:], "bytes 13-15/16"),
        ("bytes=0-999", 206, DATA, "bytes 0-15/16"),
        ("bytes=99-", 416, None, "bytes */16"),
        # RFC 9110 section 14.2: a suffix longer than the object selects all of it.
        ("bytes=-99999999999999999999", 206, DATA, "bytes 0-15/16"),
        ("bytes=-" + "9" * 5000, 206, DATA, "bytes 0-15/16"),  # past int()'s 4,300 digits
        ("bytes=-" + "0" * 5000 + "3", 206, DATA[-3:], "bytes 13-15/16"),
        ("bytes=-17", 206, DATA, "bytes 0-15/16"),
        ("bytes=-16", 206, DATA, "bytes 0-15/16"),
    ],
)
def test_the_signed_url_supports_ranges(client, auth, header, status, body, content_range):
    made = create(client, auth, DATA)
    path = download_path(client, auth, made["artifact_id"])

    response = client.get(path, headers={"Range": header})

    assert response.status_code == status
    assert response.headers["Content-Range"] == content_range
    if body is not None:
        assert response.data == body
        assert response.headers["Content-Length"] == str(len(body))


@pytest.mark.parametrize("header", ["items=0-1", "lines=1-2", "Bytes2=0-1"])
def test_a_range_in_a_unit_other_than_bytes_is_ignored(client, auth, header):
    """RFC 9110 section 14.2: a server MUST ignore a Range whose unit it does not know."""
    made = create(client, auth, DATA)
    response = client.get(download_path(client, auth, made["artifact_id"]), headers={"Range": header})
    assert response.status_code == 200 and response.data == DATA
    assert "Content-Range" not in response.headers


def _disposition(header: str) -> tuple[str, str]:
    """(the quoted ASCII fallback, the RFC 5987 filename* decoded)."""
    match = re.fullmatch(
        r'attachment; filename="([^"\\]*)"; filename\*=UTF-8\'\'([A-Za-z0-9%!#$&+.^_`|~-]+)', header
    )
    assert match, header
    return match.group(1), unquote(match.group(2), errors="strict")


@pytest.mark.parametrize(
    "name",
    [
        "plain.txt",
        "отчёт 2026.pdf",
        "emoji 🎉.bin",
        'say "hi"; rm -rf.txt',
        "a;b=c,d.txt",
        "tab%20and 100%.txt",
        "quote'single.txt",
    ],
)
def test_content_disposition_is_safely_encoded(client, auth, name):
    made = create(client, auth, DATA, filename=name)
    path = download_path(client, auth, made["artifact_id"])

    fallback, exact = _disposition(client.get(path).headers["Content-Disposition"])

    assert exact == name
    assert all(0x20 <= ord(c) < 0x7F and c not in '"\\;%' for c in fallback)
    assert len(fallback) == len(name)
    if name.isascii() and not set(name) & set('"\\;%'):
        assert fallback == name


def test_the_signed_url_expires(client, auth):
    made = create(client, auth, DATA)
    path = download_path(client, auth, made["artifact_id"])
    clock.advance(timedelta(seconds=3599))
    assert client.get(path).status_code == 200
    clock.advance(timedelta(seconds=2))
    assert_error(client.get(path), 410, "url_expired")
    assert_error(client.head(path), 410, "url_expired")
    # A fresh URL works.
    assert client.get(download_path(client, auth, made["artifact_id"])).data == DATA


def test_the_signed_url_stops_when_the_artifact_expires(client, auth):
    made = create(client, auth, DATA, ttl="10m")
    path = download_path(client, auth, made["artifact_id"])
    clock.advance(timedelta(minutes=11))
    assert_error(client.get(path), 410, "artifact_expired")
    assert_error(
        client.get(f"/v1/artifacts/{made['artifact_id']}/download-url", headers=auth), 410, "artifact_expired"
    )


def test_the_signed_url_stops_when_the_artifact_is_deleted(client, auth):
    made = create(client, auth, DATA)
    path = download_path(client, auth, made["artifact_id"])
    client.delete(f"/v1/artifacts/{made['artifact_id']}", headers=auth)
    assert_error(client.get(path), 410, "artifact_already_deleted")
    assert_error(client.head(path), 410, "artifact_already_deleted")
    assert_error(
        client.get(f"/v1/artifacts/{made['artifact_id']}/download-url", headers=auth),
        410,
        "artifact_already_deleted",
    )


def test_a_tampered_download_url_is_refused(client, auth):
    made = create(client, auth, DATA)
    token = download_path(client, auth, made["artifact_id"]).rsplit("/", 1)[1]
    flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    for bad in (flipped, token[:-2], token[::-1], "x.y", token + "x", "%", token[:11]):
        assert_error(client.get(f"/v1/blobs/{bad}"), 403, "invalid_signature")
    # An upload token is not a download token.
    ticket = reserve(client, auth).get_json()
    upload_token = ticket["upload_url"].rsplit("/", 1)[1]
    assert_error(client.get(f"/v1/blobs/{upload_token}"), 403, "invalid_signature")


def test_a_download_url_has_one_spelling(client, auth):
    """Other spellings of the same bytes (spare bits in the last character,
    '+' for '-') are refused like any other token."""
    made = create(client, auth, DATA)
    path = download_path(client, auth, made["artifact_id"])
    token = path.rsplit("/", 1)[1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare_bits = {1: 0b1111, 2: 0b11}.get(-len(token) % 4, 0)  # unused low bits of the last character
    assert spare_bits, "a token whose length leaves no spare bits"
    last = alphabet.index(token[-1])
    respelled = [token[:-1] + alphabet[last ^ bit] for bit in (1, spare_bits) if last ^ bit != last]
    respelled.append(token.replace("-", "+"))  # ('/' for '_' would be another route)
    respelled = [other for other in respelled if other != token]
    assert respelled
    for other in respelled:
        assert_error(client.get(f"/v1/blobs/{other}"), 403, "invalid_signature")
    assert client.get(path).status_code == 200


def test_signed_urls_reveal_no_ids(client, auth, tenant_and_key):
    """A URL holder (or a log reader) learns nothing from the token itself."""
    made = create(client, auth, DATA)
    download = download_path(client, auth, made["artifact_id"]).rsplit("/", 1)[1]
    upload = reserve(client, auth).get_json()["upload_url"].rsplit("/", 1)[1]
    for token in (download, upload):
        decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        for secret in (tenant_and_key[0].id, made["artifact_id"], "exp"):
            assert secret not in token and secret.encode() not in decoded
    # Two URLs for the same artifact share nothing either.
    again = download_path(client, auth, made["artifact_id"]).rsplit("/", 1)[1]
    assert again != download and again[:16] != download[:16]


def test_download_url_of_a_completed_presigned_upload(client, auth):
    ticket = reserve(client, auth, size=16, filename="p.bin").get_json()
    put_bytes(client, ticket, DATA)
    client.post(f"/v1/artifacts/{ticket['artifact_id']}/complete", headers=auth)
    assert client.get(download_path(client, auth, ticket["artifact_id"])).data == DATA


# ---------------------------------------------------------------- delete


def test_delete(client, auth):
    made = create(client, auth, DATA)
    keep = create(client, auth, b"other")
    link = make_link(client, auth, made["artifact_id"]).get_json()
    path = download_path(client, auth, made["artifact_id"])

    response = client.delete(f"/v1/artifacts/{made['artifact_id']}", headers=auth)

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"artifact_id", "deleted", "deleted_at"}
    assert body["artifact_id"] == made["artifact_id"]
    assert body["deleted"] is True
    assert abs((ts(body["deleted_at"]) - clock.now()).total_seconds()) <= 2

    listed = client.get("/v1/artifacts", headers=auth).get_json()["artifacts"]
    assert [a["artifact_id"] for a in listed] == [keep["artifact_id"]]
    assert_error(client.get(v1.path_of(link["url"])), 410, "artifact_already_deleted")
    assert_error(client.get(path), 410, "artifact_already_deleted")
    assert_error(
        client.delete(f"/v1/artifacts/{made['artifact_id']}", headers=auth), 410, "artifact_already_deleted"
    )
    assert count_rows(Artifact) == 2  # soft-deleted


def test_delete_accepts_a_json_content_type_without_a_body(client, auth):
    # The TS MCP sends Content-Type: application/json on every request.
    made = create(client, auth)
    headers = {**auth, "Content-Type": "application/json"}
    assert client.delete(f"/v1/artifacts/{made['artifact_id']}", headers=headers).status_code == 200


def test_delete_a_pending_reservation(client, auth):
    ticket = reserve(client, auth).get_json()
    assert client.delete(f"/v1/artifacts/{ticket['artifact_id']}", headers=auth).status_code == 200
    listed = client.get("/v1/artifacts", headers=auth).get_json()["artifacts"]
    assert listed == []


def test_delete_an_expired_artifact_is_allowed(client, auth):
    made = create(client, auth, ttl="1h")
    clock.advance(timedelta(hours=2))
    assert client.delete(f"/v1/artifacts/{made['artifact_id']}", headers=auth).status_code == 200


def test_delete_unknown_is_404(client, auth):
    assert_error(client.delete(f"/v1/artifacts/{MISSING_ID}", headers=auth), 404, "artifact_not_found")


# ---------------------------------------------------------------- extend-ttl


def extend(client, auth, artifact_id, ttl):
    return client.post(f"/v1/artifacts/{artifact_id}/extend-ttl", json={"ttl": ttl}, headers=auth)


def test_extend_ttl_moves_expiry_later(client, auth):
    made = create(client, auth, ttl="1d")
    clock.advance(timedelta(hours=12))

    response = extend(client, auth, made["artifact_id"], "30d")

    assert response.status_code == 200
    body = assert_artifact(
        response.get_json(), artifact_id=made["artifact_id"], content_hash=made["content_hash"]
    )
    assert abs((ts(body["expires_at"]) - (clock.now() + timedelta(days=30))).total_seconds()) <= 2
    assert client.get(f"/v1/artifacts/{made['artifact_id']}", headers=auth).get_json() == body


def test_extend_ttl_never_shortens(client, auth):
    made = create(client, auth, ttl="30d")
    body = extend(client, auth, made["artifact_id"], "1h").get_json()
    assert body["expires_at"] == made["expires_at"]


def test_extend_ttl_counts_from_now(client, auth):
    made = create(client, auth, ttl="2d")
    clock.advance(timedelta(days=1))
    body = extend(client, auth, made["artifact_id"], "2d").get_json()
    assert ts(body["expires_at"]) - ts(made["expires_at"]) == pytest.approx(
        timedelta(days=1), abs=timedelta(seconds=2)
    )


def test_extend_ttl_never_on_pro(client, auth):
    made = create(client, auth, ttl="1d")
    assert extend(client, auth, made["artifact_id"], "never").get_json()["expires_at"] is None
    # max(never, anything) is never.
    assert extend(client, auth, made["artifact_id"], "1d").get_json()["expires_at"] is None


@pytest.mark.parametrize(("ttl", "upgrade"), [("never", True), ("91d", True), ("366d", False)])
def test_extend_ttl_beyond_the_free_plan(client, free, ttl, upgrade):
    _, auth = free
    made = create(client, auth, ttl="1d")
    error = assert_error(extend(client, auth, made["artifact_id"], ttl), 400, "ttl_exceeds_plan_limit")
    assert ("upgrade_url" in error) is upgrade
    assert client.get(f"/v1/artifacts/{made['artifact_id']}", headers=auth).get_json() == made


def test_extend_ttl_beyond_the_pro_plan(client, auth):
    made = create(client, auth)
    assert_error(extend(client, auth, made["artifact_id"], "366d"), 400, "ttl_exceeds_plan_limit")
    assert extend(client, auth, made["artifact_id"], "365d").status_code == 200


@pytest.mark.parametrize("body", [{}, {"ttl": "later"}, {"ttl": 5}, {"ttl": None}, {"ttl": ""}, [], "30d"])
def test_extend_ttl_bad_bodies_are_400(client, auth, body):
    made = create(client, auth)
    response = client.post(f"/v1/artifacts/{made['artifact_id']}/extend-ttl", json=body, headers=auth)
    assert_error(response, 400, "invalid_request")


def test_extend_ttl_without_a_body_is_400(client, auth):
    made = create(client, auth)
    assert_error(
        client.post(f"/v1/artifacts/{made['artifact_id']}/extend-ttl", headers=auth), 400, "invalid_request"
    )


def test_extend_ttl_of_deleted_expired_and_unknown(client, auth):
    deleted = create(client, auth)
    client.delete(f"/v1/artifacts/{deleted['artifact_id']}", headers=auth)
    assert_error(extend(client, auth, deleted["artifact_id"], "1d"), 410, "artifact_already_deleted")

    expired = create(client, auth, ttl="1h")
    clock.advance(timedelta(hours=1, seconds=1))
    assert_error(extend(client, auth, expired["artifact_id"], "30d"), 410, "artifact_expired")

    assert_error(extend(client, auth, MISSING_ID, "1d"), 404, "artifact_not_found")


# ---------------------------------------------------------------- tenant isolation


ROUTES = {
    "get": ("GET", "/v1/artifacts/{id}", None),
    "download-url": ("GET", "/v1/artifacts/{id}/download-url", None),
    "delete": ("DELETE", "/v1/artifacts/{id}", None),
    "extend-ttl": ("POST", "/v1/artifacts/{id}/extend-ttl", {"ttl": "1d"}),
    "links": ("POST", "/v1/artifacts/{id}/links", None),
    "links-with-body": ("POST", "/v1/artifacts/{id}/links", {"expires_in": 60}),
    "complete": ("POST", "/v1/artifacts/{id}/complete", None),
}


@pytest.mark.parametrize("kind", ["active", "pending"])
@pytest.mark.parametrize("route", ROUTES)
def test_another_tenants_artifact_is_indistinguishable_from_a_missing_one(client, auth, other, kind, route):
    if kind == "active":
        mine = create(client, auth, DATA, session_id="s-acme")
    else:
        mine = reserve(client, auth, size=3, session_id="s-acme").get_json()
    method, path, body = ROUTES[route]
    _, theirs = other
    before = client.get(f"/v1/artifacts/{mine['artifact_id']}", headers=auth).get_json()

    response = client.open(path.format(id=mine["artifact_id"]), method=method, json=body, headers=theirs)
    missing = client.open(path.format(id=MISSING_ID), method=method, json=body, headers=theirs)

    assert_error(response, 404, "artifact_not_found")
    assert response.get_json() == missing.get_json()
    # Nothing of the owner's changed.
    assert client.get(f"/v1/artifacts/{mine['artifact_id']}", headers=auth).get_json() == before
    assert client.get("/v1/whoami", headers=auth).get_json()["active_links"] == 0


def test_another_tenants_sessions_and_listings_are_invisible(client, auth, other):
    create(client, auth, DATA, session_id="s-acme", metadata={"k": "v"})
    _, theirs = other

    assert_error(client.post("/v1/sessions/s-acme/seal", headers=theirs), 404, "session_not_found")
    assert client.get("/v1/artifacts?session_id=s-acme", headers=theirs).get_json()["artifacts"] == []
    assert client.get("/v1/artifacts?metadata.k=v", headers=theirs).get_json()["artifacts"] == []
    assert client.get("/v1/sessions", headers=theirs).get_json()["sessions"] == []
    # Their session of the same name is their own.
    create(client, theirs, session_id="s-acme")
    assert client.post("/v1/sessions/s-acme/seal", headers=theirs).get_json()["artifact_count"] == 1
    assert v1.upload_json(client, auth, session_id="s-acme").status_code == 201


def test_urls_and_links_serve_their_own_tenants_artifact(client, auth, other):
    # Identical bytes in two tenants: two blobs, and each URL is bound to its artifact.
    _, theirs = other
    mine = create(client, auth, DATA, filename="mine.txt")
    their = create(client, theirs, DATA, filename="theirs.txt")
    mine_path = download_path(client, auth, mine["artifact_id"])
    mine_link = make_link(client, auth, mine["artifact_id"]).get_json()
    their_link = make_link(client, theirs, their["artifact_id"]).get_json()

    client.delete(f"/v1/artifacts/{their['artifact_id']}", headers=theirs)

    assert_error(client.get(v1.path_of(their_link["url"])), 410, "artifact_already_deleted")
    for path in (mine_path, v1.path_of(mine_link["url"])):
        response = client.get(path)
        assert response.data == DATA
        assert 'filename="mine.txt"' in response.headers["Content-Disposition"]


def test_timestamps_are_utc_with_z(client, auth):
    made = create(client, auth)
    now = clock.now().replace(microsecond=0)
    assert abs((ts(made["created_at"]) - now).total_seconds()) <= 2
    assert made["created_at"] == wire(ts(made["created_at"]))
    assert made["created_at"].endswith("Z") and made["expires_at"].endswith("Z")
