"""POST /v1/artifacts (multipart and base64 JSON) and the presigned flow:
upload-url, the signed PUT, complete."""

import base64
import hashlib
import io
import json
from datetime import timedelta

import pytest

from app.models import Artifact, Blob
from app.services import tenants
from tests import clock
from tests.api import helpers_v1 as v1
from tests.api.helpers_v1 import (
    assert_artifact,
    assert_error,
    count_rows,
    create,
    put_bytes,
    reserve,
    ts,
    upload,
    upload_json,
)
from tests.storage_probe import stored_files

# Every test here moves bytes: it runs on S3 storage too.
pytestmark = pytest.mark.storage


DATA = b"hello, hoard\n"
SHA = hashlib.sha256(DATA).hexdigest()


# ---------------------------------------------------------------- multipart


def test_multipart_as_the_sdk_sends_it(client, auth):
    fields = {"session_id": "ses_abc123", "agent_id": "agent-7", "metadata": '{"k": "v"}', "ttl": "7d"}

    response = upload(client, auth, DATA, filename="report.txt", part_type="text/plain", fields=fields)

    assert response.status_code == 201
    body = assert_artifact(
        response.get_json(),
        filename="report.txt",
        content_type="text/plain",
        size_bytes=len(DATA),
        content_hash=SHA,
        session_id="ses_abc123",
        agent_id="agent-7",
        metadata={"k": "v"},
        status="active",
        deleted_at=None,
    )
    assert ts(body["expires_at"]) - ts(body["created_at"]) == timedelta(days=7)
    fetched = client.get(f"/v1/artifacts/{body['artifact_id']}", headers=auth)
    assert fetched.get_json() == body


def test_multipart_text_fields_override_the_part(client, auth):
    fields = {"filename": "renamed.csv", "content_type": "application/x-custom"}

    response = upload(client, auth, DATA, filename="orig.txt", part_type="text/plain", fields=fields)

    assert_artifact(response.get_json(), filename="renamed.csv", content_type="application/x-custom")


def test_multipart_fields_may_come_in_the_cli_order_and_default_ttl_is_30_days(client, auth):
    fields = [("filename", "cli.log"), ("session_id", "s1"), ("agent_id", "a1"), ("metadata", "")]

    body = upload(client, auth, DATA, filename="ignored.bin", fields=fields).get_json()

    assert_artifact(body, filename="cli.log", session_id="s1", agent_id="a1", metadata={})
    assert ts(body["expires_at"]) - ts(body["created_at"]) == timedelta(days=30)


@pytest.mark.parametrize(
    ("explicit", "part_type", "filename", "expected"),
    [
        ("application/x-explicit", "image/png", "a.txt", "application/x-explicit"),
        (None, "image/png", "a.txt", "image/png"),
        (None, "application/octet-stream", "data.json", "application/json"),
        (None, "application/octet-stream", "blob.unknownext", "application/octet-stream"),
        (None, None, "page.html", "text/html"),
        (None, None, "noextension", "application/octet-stream"),
        ("", "text/csv", "a.txt", "text/csv"),
        (None, "text/\u00e9", "a.txt", "text/plain"),  # not ASCII: not a header value, so guessed
    ],
)
def test_multipart_content_type_rules(client, auth, explicit, part_type, filename, expected):
    fields = {"content_type": explicit} if explicit is not None else {}

    response = upload(client, auth, DATA, filename=filename, part_type=part_type, fields=fields)

    assert response.status_code == 201
    assert response.get_json()["content_type"] == expected


@pytest.mark.parametrize(
    "name", ["héllo wörld ✓.txt", "отчёт.pdf", "a%22b.txt", 'quote"d.txt', "100%.txt", "semi;colon.txt"]
)
def test_multipart_part_filename_is_stored_as_the_sdk_sent_it(client, auth, name):
    # httpx sends '"' as %22 and non-ASCII as raw UTF-8; nothing is percent-decoded.
    stored = name.replace('"', "%22")

    response = upload(client, auth, DATA, filename=name)

    assert response.status_code == 201, response.data
    assert response.get_json()["filename"] == stored


def test_multipart_chunked_without_content_length(client, auth):
    # The TS MCP: every field before the file, octet-stream part, chunked body.
    data = bytes(range(256)) * 300
    fields = [("filename", "dump.bin"), ("content_type", "application/x-dump"), ("agent_id", "mcp")]

    response = upload(
        client,
        auth,
        data,
        filename="dump.bin",
        part_type="application/octet-stream",
        fields=fields,
        chunked=True,
    )

    assert response.status_code == 201, response.data
    body = assert_artifact(response.get_json(), size_bytes=len(data), content_type="application/x-dump")
    assert body["content_hash"] == hashlib.sha256(data).hexdigest()
    path = v1.download_path(client, auth, body["artifact_id"])
    assert client.get(path).data == data


@pytest.mark.parametrize("chunked", [False, True])
def test_multipart_over_the_limit_is_413_and_stores_nothing(app, client, auth, chunked, monkeypatch):
    monkeypatch.setitem(app.config, "MULTIPART_MAX_BYTES", 1000)

    assert upload(client, auth, b"x" * 1000, chunked=chunked).status_code == 201
    response = upload(client, auth, b"y" * 1001, chunked=chunked)

    assert_error(response, 413, "file_too_large")
    assert count_rows(Artifact) == 1
    assert len(stored_files(app)) == 1


def test_multipart_far_over_the_limit_is_refused_before_reading(app, client, auth, monkeypatch):
    monkeypatch.setitem(app.config, "MULTIPART_MAX_BYTES", 1000)

    assert_error(upload(client, auth, b"z" * 400_000), 413, "file_too_large")
    assert_error(upload(client, auth, b"z" * 400_000, chunked=True), 413, "file_too_large")


@pytest.mark.parametrize(
    ("fields", "filename"),
    [
        ({}, None),  # a file part without a filename, and no filename field
        ({"filename": ""}, None),
    ],
)
def test_multipart_needs_a_filename(client, auth, fields, filename):
    assert_error(upload(client, auth, filename=filename, fields=fields), 400, "invalid_request")


def test_multipart_needs_exactly_one_file_part(client, auth):
    only_fields = (
        f"--{v1.BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="filename"\r\n\r\na.txt\r\n'
        f"--{v1.BOUNDARY}--\r\n"
    )
    headers = {**auth, "Content-Type": f"multipart/form-data; boundary={v1.BOUNDARY}"}
    assert_error(client.post("/v1/artifacts", data=only_fields, headers=headers), 400, "invalid_request")

    two = v1.multipart_body(data=b"a")[: -len(f"--{v1.BOUNDARY}--\r\n")] + v1.multipart_body(data=b"b")
    assert_error(client.post("/v1/artifacts", data=two, headers=headers), 400, "invalid_request")


def test_malformed_multipart_is_400(client, auth):
    headers = {**auth, "Content-Type": f"multipart/form-data; boundary={v1.BOUNDARY}"}
    response = client.post("/v1/artifacts", data=b"this is not multipart at all", headers=headers)
    assert_error(response, 400, "invalid_request")


def test_other_body_types_are_400(client, auth):
    response = client.post("/v1/artifacts", data=b"raw", headers={**auth, "Content-Type": "text/plain"})
    assert_error(response, 400, "invalid_request")


# ---------------------------------------------------------------- JSON / base64


def test_json_upload(client, auth):
    response = upload_json(
        client,
        auth,
        DATA,
        filename="notes.md",
        content_encoding="base64",
        session_id="s",
        agent_id="a",
        metadata={"team": "core", "run": "42"},
        ttl="12h",
    )

    assert response.status_code == 201
    body = assert_artifact(
        response.get_json(),
        filename="notes.md",
        content_type="text/markdown",
        size_bytes=len(DATA),
        content_hash=SHA,
        session_id="s",
        agent_id="a",
        metadata={"team": "core", "run": "42"},
        status="active",
    )
    assert ts(body["expires_at"]) - ts(body["created_at"]) == timedelta(hours=12)
    assert client.get(v1.download_path(client, auth, body["artifact_id"])).data == DATA


def test_json_explicit_content_type_and_empty_content(client, auth):
    body = create(client, auth, b"", filename="empty.txt", content_type="application/x-empty")
    assert_artifact(
        body, size_bytes=0, content_type="application/x-empty", content_hash=hashlib.sha256(b"").hexdigest()
    )


@pytest.mark.parametrize(
    "body",
    [
        {"filename": "a.txt", "content": "not base64!!"},
        {"filename": "a.txt", "content": "aGVsbG8"},  # missing padding
        {"filename": "a.txt", "content": 12},
        {"filename": "a.txt", "content": "aGVsbG8=", "content_encoding": "gzip"},
        {"filename": "a.txt", "content": "hello", "content_encoding": "utf-8"},
        {"filename": "a.txt"},
        {"content": "aGVsbG8="},
        {"filename": None, "content": "aGVsbG8="},
    ],
)
def test_json_bad_bodies_are_400(client, auth, body):
    assert_error(client.post("/v1/artifacts", json=body, headers=auth), 400, "invalid_request")


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"a string"', b"\xff\xfe"])
def test_json_malformed_or_not_an_object_is_400(client, auth, raw):
    headers = {**auth, "Content-Type": "application/json"}
    assert_error(client.post("/v1/artifacts", data=raw, headers=headers), 400, "invalid_request")


def test_json_decoded_limit(app, client, auth, monkeypatch):
    monkeypatch.setitem(app.config, "JSON_UPLOAD_MAX_BYTES", 1000)

    assert upload_json(client, auth, b"x" * 1000).status_code == 201
    assert_error(upload_json(client, auth, b"x" * 1001), 413, "file_too_large")
    assert_error(upload_json(client, auth, b"x" * 100_000), 413, "file_too_large")
    assert count_rows(Artifact) == 1


# ---------------------------------------------------------------- field rules


@pytest.mark.parametrize(
    "name",
    [
        "a/b.txt",
        "../evil.txt",
        "/tmp/abs.txt",
        "a\\b.txt",
        "nul\x00.txt",
        "ctl\x01.txt",
        "line\nbreak",
        "tab\there",
        "del\x7f.txt",
        "c1\x85.txt",
        "x" * 256,
        ".",
        "..",
        "lone\ud800.txt",
    ],
)
def test_bad_filenames_are_400(client, auth, name):
    assert_error(upload_json(client, auth, filename=name), 400, "invalid_request")
    assert_error(reserve(client, auth, filename=name), 400, "invalid_request")
    if utf8(name):  # JSON can carry a lone surrogate, multipart cannot
        assert_error(upload(client, auth, fields={"filename": name}), 400, "invalid_request")


def utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def test_empty_filename(client, auth):
    assert_error(upload_json(client, auth, filename=""), 400, "invalid_request")
    # An empty text field is absent, as the CLI sends only truthy fields.
    assert (
        upload(client, auth, filename="part.txt", fields={"filename": ""}).get_json()["filename"]
        == "part.txt"
    )


@pytest.mark.parametrize("name", ["a/b.txt", "..\\evil.txt", "../../etc/passwd"])
def test_bad_part_filenames_are_400(client, auth, name):
    assert_error(upload(client, auth, filename=name), 400, "invalid_request")


@pytest.mark.parametrize(
    "name", ["x" * 255, "日本語のファイル名.txt", "emoji 🎉.bin", "..hidden", "a b (1).tar.gz"]
)
def test_good_filenames_are_kept_exactly(client, auth, name):
    assert create(client, auth, filename=name)["filename"] == name
    assert upload(client, auth, fields={"filename": name}).get_json()["filename"] == name


@pytest.mark.parametrize("field", ["session_id", "agent_id"])
@pytest.mark.parametrize("value", ["a" * 129, "a/b", "ctl\x01", "new\nline", "\x00", "lone\ud800"])
def test_bad_labels_are_400(client, auth, field, value):
    assert_error(upload_json(client, auth, **{field: value}), 400, "invalid_request")
    assert_error(reserve(client, auth, **{field: value}), 400, "invalid_request")
    if utf8(value):
        assert_error(upload(client, auth, fields={field: value}), 400, "invalid_request")


@pytest.mark.parametrize("field", ["session_id", "agent_id"])
def test_good_labels(client, auth, field):
    for value in ("a" * 128, "ses_abc123def456", "x.y-z_1", "ünïcode"):
        assert create(client, auth, **{field: value})[field] == value
    assert create(client, auth, **{field: ""})[field] is None
    assert_error(upload_json(client, auth, **{field: 7}), 400, "invalid_request")


@pytest.mark.parametrize(
    "metadata",
    [
        {"1abc": "v"},
        {"a.b": "v"},
        {"": "v"},
        {"k" * 65: "v"},
        {"has space": "v"},
        {"k": 1},
        {"k": None},
        {"k": {"nested": "v"}},
        {"k": ["v"]},
        {"k": True},
        {"k": "v" * 8200},
        {"k": "nul\x00"},
        {"k": "lone\udfff"},
        {f"k{i}": "v" * 100 for i in range(80)},
        ["k", "v"],
        "not json",
        '["a"]',
        7,
    ],
)
def test_bad_metadata_is_400(client, auth, metadata):
    assert_error(upload_json(client, auth, metadata=metadata), 400, "invalid_request")
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    assert_error(upload(client, auth, fields={"metadata": text}), 400, "invalid_request")


def test_invalid_metadata_json_in_multipart_is_400(client, auth):
    for text in ("{bad", '{"k": "v"', "null", '"str"', "[]", "1"):
        assert_error(upload(client, auth, fields={"metadata": text}), 400, "invalid_request")


def test_metadata_limits_are_inclusive(client, auth):
    key = "k" + "x" * 63
    # {"k":"vvv..."} serialized is exactly 8192 bytes.
    value = "v" * (8 * 1024 - len('{"k":""}'))
    assert create(client, auth, metadata={key: "ok", "A-b_c": ""})["metadata"] == {key: "ok", "A-b_c": ""}
    assert create(client, auth, metadata={"k": value})["metadata"] == {"k": value}
    assert_error(upload_json(client, auth, metadata={"k": value + "v"}), 400, "invalid_request")


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [
        ("30d", 30 * 86400),
        ("12h", 12 * 3600),
        ("90m", 5400),
        ("45s", 45),
        ("2w", 14 * 86400),
        ("365d", 365 * 86400),
    ],
)
def test_ttl_syntax(client, auth, ttl, seconds):
    body = create(client, auth, ttl=ttl)
    assert (ts(body["expires_at"]) - ts(body["created_at"])).total_seconds() == pytest.approx(seconds, abs=1)


def test_ttl_never_on_pro(client, auth):
    assert create(client, auth, ttl="never")["expires_at"] is None
    assert upload(client, auth, fields={"ttl": "never"}).get_json()["expires_at"] is None


@pytest.mark.parametrize("ttl", ["never", "91d", "13w", "2161h"])
def test_ttl_beyond_the_free_plan(client, free, ttl):
    _, auth = free
    error = assert_error(upload_json(client, auth, ttl=ttl), 400, "ttl_exceeds_plan_limit")
    assert error["upgrade_url"] == v1.UPGRADE_URL
    assert_error(upload(client, auth, fields={"ttl": ttl}), 400, "ttl_exceeds_plan_limit")
    assert_error(reserve(client, auth, ttl=ttl), 400, "ttl_exceeds_plan_limit")


def test_ttl_at_the_free_limit(client, free):
    _, auth = free
    assert create(client, auth, ttl="90d")["expires_at"] is not None


@pytest.mark.parametrize("ttl", ["366d", "400d", "53w", "9999999999w", "999999999d"])
def test_ttl_beyond_the_pro_plan(client, auth, ttl):
    error = assert_error(upload_json(client, auth, ttl=ttl), 400, "ttl_exceeds_plan_limit")
    assert "upgrade_url" not in error  # no plan allows it


def test_ttl_beyond_every_plan_offers_no_upgrade(client, free):
    error = assert_error(upload_json(client, free[1], ttl="400d"), 400, "ttl_exceeds_plan_limit")
    assert "upgrade_url" not in error


@pytest.mark.parametrize(
    "ttl", ["abc", "30", "30x", "-1d", "0d", "1.5h", " 30d", "30D", "d", "forever", 30, True]
)
def test_bad_ttl_syntax_is_400(client, auth, ttl):
    assert_error(upload_json(client, auth, ttl=ttl), 400, "invalid_request")
    if isinstance(ttl, str):
        assert_error(upload(client, auth, fields={"ttl": ttl}), 400, "invalid_request")


# ---------------------------------------------------------------- idempotency


def test_idempotency_key_replays_the_original(app, client, auth):
    key = {"Idempotency-Key": "3f2a9c0d1e8b7a6f5e4d3c2b1a0f9e8d"}
    first = upload(client, auth, DATA, headers=key, fields={"metadata": '{"k": "v"}'})
    assert first.status_code == 201

    # The CLI re-pushes the same file with other --meta under the same key.
    again = upload(client, auth, b"other bytes", headers=key, fields={"metadata": '{"k": "other"}'})
    as_json = upload_json(client, auth, b"third", headers=key, filename="x.txt")

    assert again.status_code == 200 and as_json.status_code == 200
    assert again.get_json() == first.get_json() == as_json.get_json()
    assert count_rows(Artifact) == 1
    assert count_rows(Blob) == 1
    assert len(stored_files(app)) == 1


def test_idempotency_key_expires_after_24_hours(client, auth):
    key = {"Idempotency-Key": "mcp_0123456789abcdef0123456789abcdef"}
    first = upload_json(client, auth, DATA, headers=key).get_json()

    clock.advance(timedelta(hours=23, minutes=59))
    assert upload_json(client, auth, DATA, headers=key).status_code == 200
    clock.advance(timedelta(minutes=2))
    later = upload_json(client, auth, DATA, headers=key)

    assert later.status_code == 201
    assert later.get_json()["artifact_id"] != first["artifact_id"]
    # ... and the new artifact is what the key now replays.
    assert upload_json(client, auth, DATA, headers=key).get_json() == later.get_json()


def test_idempotency_keys_are_per_tenant(client, auth, other):
    key = {"Idempotency-Key": "shared-key"}
    mine = upload_json(client, auth, headers=key).get_json()
    theirs = upload_json(client, other[1], headers=key)
    assert theirs.status_code == 201
    assert theirs.get_json()["artifact_id"] != mine["artifact_id"]


def test_idempotency_key_longer_than_256_is_400(client, auth):
    assert upload_json(client, auth, headers={"Idempotency-Key": "k" * 256}).status_code == 201
    assert_error(upload_json(client, auth, headers={"Idempotency-Key": "k" * 257}), 400, "invalid_request")


# ---------------------------------------------------------------- dedup, quota, sealed


def test_identical_bytes_share_one_blob(app, client, auth):
    first = create(client, auth, DATA, filename="one.txt")
    second = upload(client, auth, DATA, filename="two.txt").get_json()

    assert first["artifact_id"] != second["artifact_id"]
    assert first["content_hash"] == second["content_hash"] == SHA
    assert count_rows(Artifact) == 2
    assert count_rows(Blob) == 1
    assert len(stored_files(app)) == 1

    assert client.delete(f"/v1/artifacts/{first['artifact_id']}", headers=auth).status_code == 200
    path = v1.download_path(client, auth, second["artifact_id"])
    assert client.get(path).data == DATA


def test_dedup_is_per_tenant(client, auth, other):
    create(client, auth, DATA)
    create(client, other[1], DATA)
    assert count_rows(Blob) == 2


def test_storage_quota(app, client, auth, tenant):
    tenants.update_tenant(tenant, storage_quota_bytes=100)

    assert upload_json(client, auth, b"a" * 60).status_code == 201
    error = assert_error(upload_json(client, auth, b"b" * 41), 403, "quota_exceeded")
    assert "upgrade_url" not in error  # an operator's quota: no plan lifts it
    assert_error(upload(client, auth, b"b" * 41), 403, "quota_exceeded")
    assert_error(reserve(client, auth, size=41), 403, "quota_exceeded")
    assert upload_json(client, auth, b"c" * 40).status_code == 201
    assert count_rows(Artifact) == 2


def test_presigned_reservations_that_together_pass_the_quota_are_refused_at_complete(
    app, client, auth, tenant
):
    """Each reservation fits the room left when it is made; the bytes count
    only at /complete, which refuses the one that no longer fits."""
    tenants.update_tenant(tenant, storage_quota_bytes=100)
    tickets = [reserve(client, auth, size=60).get_json() for _ in range(2)]
    for index, ticket in enumerate(tickets):
        assert put_bytes(client, ticket, bytes([65 + index]) * 60).status_code == 200

    first, second = (client.post(f"/v1/artifacts/{t['artifact_id']}/complete", headers=auth) for t in tickets)

    assert first.status_code == 200
    assert_error(second, 403, "quota_exceeded")
    assert (
        client.get(f"/v1/artifacts/{tickets[1]['artifact_id']}", headers=auth).get_json()["status"]
        == "pending"
    )
    assert client.get("/v1/whoami", headers=auth).get_json()["usage_storage_bytes"] == 60
    assert count_rows(Blob) == 1


def test_identical_bytes_cost_no_quota(app, client, auth, tenant):
    tenants.update_tenant(tenant, storage_quota_bytes=100)
    create(client, auth, b"a" * 100)

    assert upload_json(client, auth, b"a" * 100, filename="copy").status_code == 201
    assert upload(client, auth, b"a" * 100, filename="copy2").status_code == 201
    assert_error(upload_json(client, auth, b"b"), 403, "quota_exceeded")
    assert count_rows(Blob) == 1
    assert len(stored_files(app)) == 1


def test_storage_quota_on_free_offers_an_upgrade(client, free):
    tenant, auth = free
    tenants.update_tenant(tenant, storage_quota_bytes=10)
    error = assert_error(upload_json(client, auth, b"x" * 11), 403, "quota_exceeded")
    assert error["upgrade_url"] == v1.UPGRADE_URL


def test_uploads_into_a_sealed_session_are_409(app, client, auth):
    create(client, auth, session_id="done")
    assert client.post("/v1/sessions/done/seal", headers=auth).status_code == 200
    files = stored_files(app)

    assert_error(upload(client, auth, fields={"session_id": "done"}), 409, "session_sealed")
    assert_error(upload(client, auth, fields={"session_id": "done"}, chunked=True), 409, "session_sealed")
    assert_error(upload_json(client, auth, session_id="done"), 409, "session_sealed")
    assert_error(reserve(client, auth, session_id="done"), 409, "session_sealed")

    assert count_rows(Artifact) == 1
    assert stored_files(app) == files
    # Other sessions are unaffected.
    assert create(client, auth, session_id="next")["session_id"] == "next"


# ---------------------------------------------------------------- presigned


@pytest.mark.local_storage  # Hoard's own upload URL; S3 presigns its own
def test_presigned_round_trip(app, client, auth):
    data = bytes(range(256)) * 50
    response = reserve(
        client,
        auth,
        size=len(data),
        filename="big.tar",
        content_type="application/x-tar",
        session_id="s1",
        agent_id="a1",
        metadata={"k": "v"},
        ttl="2d",
    )

    assert response.status_code == 201
    ticket = response.get_json()
    assert set(ticket) == {
        "artifact_id",
        "status",
        "upload_url",
        "upload_method",
        "upload_headers",
        "upload_expires_at",
        "expires_in",
        "filename",
        "content_type",
        "size_bytes",
    }
    assert v1.ARTIFACT_ID.match(ticket["artifact_id"])
    assert ticket["status"] == "pending"
    assert ticket["upload_method"] == "PUT"
    assert ticket["upload_url"].startswith("http://localhost/v1/uploads/")
    assert ticket["upload_headers"] == {"Content-Type": "application/x-tar"}
    assert ticket["expires_in"] == 3600
    assert v1.TIMESTAMP.match(ticket["upload_expires_at"])
    assert abs((ts(ticket["upload_expires_at"]) - clock.now()).total_seconds() - 3600) <= 2
    assert (ticket["filename"], ticket["content_type"], ticket["size_bytes"]) == (
        "big.tar",
        "application/x-tar",
        len(data),
    )

    pending = client.get(f"/v1/artifacts/{ticket['artifact_id']}", headers=auth).get_json()
    assert_artifact(pending, status="pending", content_hash=None, size_bytes=len(data), metadata={"k": "v"})

    put = put_bytes(client, ticket, data)
    assert put.status_code == 200, put.data

    done = client.post(f"/v1/artifacts/{ticket['artifact_id']}/complete", headers=auth)
    assert done.status_code == 200
    body = assert_artifact(
        done.get_json(),
        artifact_id=ticket["artifact_id"],
        status="active",
        content_hash=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        filename="big.tar",
        session_id="s1",
        agent_id="a1",
        metadata={"k": "v"},
        expires_at=pending["expires_at"],
    )
    assert client.get(v1.download_path(client, auth, body["artifact_id"])).data == data

    again = client.post(f"/v1/artifacts/{ticket['artifact_id']}/complete", headers=auth)
    assert again.status_code == 200
    assert again.get_json() == body


def test_complete_accepts_every_body_less_shape(client, auth):
    for headers in ({}, {"Content-Type": "application/json"}, {"Content-Length": "0"}):
        ticket = reserve(client, auth, size=3).get_json()
        put_bytes(client, ticket, b"abc")
        response = client.post(f"/v1/artifacts/{ticket['artifact_id']}/complete", headers={**auth, **headers})
        assert response.status_code == 200, response.data


def test_complete_without_bytes_is_upload_not_found(client, auth):
    ticket = reserve(client, auth).get_json()

    assert_error(
        client.post(f"/v1/artifacts/{ticket['artifact_id']}/complete", headers=auth), 400, "upload_not_found"
    )
    # Nor can a pending artifact be downloaded or linked.
    dl = client.get(f"/v1/artifacts/{ticket['artifact_id']}/download-url", headers=auth)
    assert_error(dl, 400, "upload_not_found")
    assert_error(v1.make_link(client, auth, ticket["artifact_id"]), 400, "upload_not_found")
    # The bytes may still arrive.
    assert put_bytes(client, ticket, b"12345").status_code == 200
    assert client.post(f"/v1/artifacts/{ticket['artifact_id']}/complete", headers=auth).status_code == 200


@pytest.mark.local_storage  # Hoard's own upload URL; S3 presigns its own
def test_put_of_the_wrong_size_is_400(client, auth):
    ticket = reserve(client, auth, size=5).get_json()

    assert_error(put_bytes(client, ticket, b"1234"), 400, "invalid_request")
    assert_error(put_bytes(client, ticket, b"123456"), 400, "invalid_request")
    assert_error(
        client.post(f"/v1/artifacts/{ticket['artifact_id']}/complete", headers=auth), 400, "upload_not_found"
    )
    assert put_bytes(client, ticket, b"12345").status_code == 200


@pytest.mark.local_storage  # Hoard's own upload URL; S3 presigns its own
def test_chunked_put_longer_than_reserved_is_refused(client, auth):
    ticket = reserve(client, auth, size=5).get_json()
    response = client.put(
        v1.path_of(ticket["upload_url"]),
        input_stream=io.BytesIO(b"123456789"),
        headers={**ticket["upload_headers"], "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code in (400, 413)
    assert response.get_json()["error"]["code"] in ("invalid_request", "file_too_large")


@pytest.mark.local_storage  # Hoard's own upload URL; S3 presigns its own
def test_chunked_put_shorter_than_reserved_fails_at_complete(client, auth):
    ticket = reserve(client, auth, size=5).get_json()
    response = client.put(
        v1.path_of(ticket["upload_url"]),
        input_stream=io.BytesIO(b"123"),
        headers={**ticket["upload_headers"], "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 200
    assert response.get_json()["received_bytes"] == 3  # what arrived, not what was announced
    complete = client.post(f"/v1/artifacts/{ticket['artifact_id']}/complete", headers=auth)
    assert_error(complete, 400, "invalid_request")
    assert (
        client.get(f"/v1/artifacts/{ticket['artifact_id']}", headers=auth).get_json()["status"] == "pending"
    )


@pytest.mark.local_storage  # Hoard's own upload URL; S3 presigns its own
def test_the_upload_url_is_single_use(client, auth):
    ticket = reserve(client, auth, size=5).get_json()
    assert put_bytes(client, ticket, b"12345").status_code == 200

    assert_error(put_bytes(client, ticket, b"54321"), 409, "upload_already_completed")
    client.post(f"/v1/artifacts/{ticket['artifact_id']}/complete", headers=auth)
    assert_error(put_bytes(client, ticket, b"54321"), 409, "upload_already_completed")
    done = client.get(f"/v1/artifacts/{ticket['artifact_id']}", headers=auth).get_json()
    assert done["content_hash"] == hashlib.sha256(b"12345").hexdigest()


@pytest.mark.local_storage  # Hoard's own upload URL; S3 presigns its own
def test_an_expired_upload_url_is_refused(client, auth):
    ticket = reserve(client, auth, size=5).get_json()
    clock.advance(timedelta(seconds=3601))
    assert_error(put_bytes(client, ticket, b"12345"), 410, "url_expired")


@pytest.mark.local_storage  # Hoard's own upload URL; S3 presigns its own
def test_a_tampered_upload_url_is_refused(client, auth, other):
    ticket = reserve(client, auth, size=5).get_json()
    path = v1.path_of(ticket["upload_url"])
    token = path.rsplit("/", 1)[1]
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]

    for bad in (flipped, token[:-2], f"{token}.", "garbage", token[2:]):
        assert_error(client.put(f"/v1/uploads/{bad}", data=b"12345"), 403, "invalid_signature")
    # A download token is not an upload token.
    art = create(client, auth)
    blob_token = v1.download_path(client, auth, art["artifact_id"]).rsplit("/", 1)[1]
    assert_error(client.put(f"/v1/uploads/{blob_token}", data=b"12345"), 403, "invalid_signature")
    # The real URL still works.
    assert put_bytes(client, ticket, b"12345").status_code == 200


def test_put_needs_no_auth_and_ignores_a_bearer(client, auth):
    ticket = reserve(client, auth, size=5).get_json()
    assert (
        put_bytes(client, ticket, b"12345", headers={"Authorization": "Bearer nonsense"}).status_code == 200
    )


@pytest.mark.local_storage  # Hoard's own upload URL; S3 presigns its own
def test_put_after_the_reservation_was_deleted_is_refused(client, auth):
    ticket = reserve(client, auth, size=5).get_json()
    client.delete(f"/v1/artifacts/{ticket['artifact_id']}", headers=auth)
    assert_error(put_bytes(client, ticket, b"12345"), 403, "invalid_signature")
    assert_error(
        client.post(f"/v1/artifacts/{ticket['artifact_id']}/complete", headers=auth),
        410,
        "artifact_already_deleted",
    )


def test_presigned_bytes_dedup_against_existing_blobs(app, client, auth):
    create(client, auth, b"12345")
    ticket = reserve(client, auth, size=5).get_json()
    put_bytes(client, ticket, b"12345")
    client.post(f"/v1/artifacts/{ticket['artifact_id']}/complete", headers=auth)
    assert count_rows(Blob) == 1
    assert len(stored_files(app)) == 1
    assert client.get(v1.download_path(client, auth, ticket["artifact_id"])).data == b"12345"


@pytest.mark.parametrize(
    ("size", "status", "code"),
    [
        (0, 400, "invalid_request"),
        (-1, 400, "invalid_request"),
        ("5", 400, "invalid_request"),
        (1.5, 400, "invalid_request"),
        (True, 400, "invalid_request"),
        (None, 400, "invalid_request"),
        (5 * 1024**3 + 1, 413, "file_too_large"),
        (10**20, 413, "file_too_large"),
    ],
)
def test_reserve_size_bounds(client, auth, size, status, code):
    assert_error(reserve(client, auth, size=size), status, code)


def test_reserve_accepts_5_gib(client, auth):
    assert reserve(client, auth, size=5 * 1024**3).get_json()["size_bytes"] == 5 * 1024**3


@pytest.mark.parametrize(
    "body",
    [
        {"content_type": "text/plain", "size_bytes": 5},
        {"filename": "a/b", "size_bytes": 5},
        {"filename": "a.txt", "size_bytes": 5, "metadata": {"1x": "v"}},
        {"filename": "a.txt", "size_bytes": 5, "ttl": "soon"},
        [1, 2],
        None,
    ],
)
def test_reserve_bad_bodies_are_400(client, auth, body):
    response = client.post("/v1/artifacts/upload-url", json=body, headers=auth)
    assert_error(response, 400, "invalid_request")


def test_reserve_content_type_defaults_from_the_filename(client, auth):
    ticket = client.post(
        "/v1/artifacts/upload-url", json={"filename": "a.json", "size_bytes": 2}, headers=auth
    ).get_json()
    assert ticket["content_type"] == "application/json"
    assert ticket["upload_headers"] == {"Content-Type": "application/json"}


def test_json_content_is_base64_standard_alphabet(client, auth):
    data = b"\xfb\xff\xfe"  # '+' and '/' in standard base64
    encoded = base64.b64encode(data).decode()
    assert "+" in encoded or "/" in encoded
    body = create(client, auth, data)
    assert body["content_hash"] == hashlib.sha256(data).hexdigest()


def test_complete_after_the_artifact_expired_is_410(client, auth):
    ticket = reserve(client, auth, size=5, ttl="30m").get_json()
    put_bytes(client, ticket, b"12345")
    clock.advance(timedelta(minutes=31))
    assert_error(
        client.post(f"/v1/artifacts/{ticket['artifact_id']}/complete", headers=auth), 410, "artifact_expired"
    )


def test_a_truncated_multipart_body_stores_nothing(app, client, auth):
    body = v1.multipart_body(data=b"x" * 50_000)
    headers = {
        **auth,
        "Content-Type": f"multipart/form-data; boundary={v1.BOUNDARY}",
        "Content-Length": str(len(body)),
    }
    # The connection ends 20 kB early.
    response = client.post("/v1/artifacts", input_stream=io.BytesIO(body[:30_000]), headers=headers)
    assert_error(response, 400, "invalid_request")
    assert count_rows(Artifact) == 0
    assert stored_files(app) == []
