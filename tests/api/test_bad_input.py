"""Bad input across both APIs: oversized headers and metadata, invalid
UTF-8, JSON that is deeply nested or the wrong shape, numbers out of range
or of the wrong type, broken base64, malformed multipart.

Each must be answered with the right 4xx in its API's envelope, and must
store nothing: no new rows and no new file anywhere under the storage root
(temporary files included). A test sends a whole family of bad requests and
reports every one that was not refused properly.
"""

import base64
import io
import json
import random
import socket
from pathlib import Path

import pytest

from app.api.parsing import DEFAULT_JSON_LIMIT
from app.models import (
    Artifact,
    ArtifactMeta,
    Blob,
    CacheEntry,
    CacheEvent,
    IdempotencyRecord,
    Link,
    Session,
)
from tests.api.helpers_v1 import BOUNDARY, count_rows, create
from tests.factories import bearer, make_tenant
from tests.live_server import HoardServer

MODELS = (Artifact, ArtifactMeta, Blob, CacheEntry, CacheEvent, IdempotencyRecord, Link, Session)
DEEP = 100_000
HASH = "0123456789abcdef"
EVENT = {
    "sessionId": "6f1e1b1e-8a53-4f4c-9c55-0d2f3d1c2b3a",
    "source": "REMOTE",
    "event": "HIT",
    "hash": HASH,
}
B64 = base64.b64encode(b"hello").decode()  # aGVsbG8=
JSON = {"Content-Type": "application/json"}


def state(app) -> tuple:
    """Every row count that matters and every file under the storage root."""
    root = Path(app.config["STORAGE_LOCAL_ROOT"])
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
    return tuple(count_rows(model) for model in MODELS), files


def error_of(response, status: int, code: str) -> str | None:
    """What is wrong with the answer to a bad request, or None."""
    if response.status_code != status:
        return f"status {response.status_code}, not {status}: {response.data[:300]!r}"
    if response.mimetype != "application/json":
        return f"not JSON: {response.mimetype}"
    body = response.get_json()
    if response.request.path.startswith("/v8/"):
        if body.get("code") != code or body.get("error") != {"code": code, "message": body.get("message")}:
            return f"not the /v8 error shape with {code}: {body}"
    elif set(body) != {"error"} or (body["error"].get("code"), body["error"].get("status")) != (code, status):
        return f"not the /v1 envelope with {code}: {body}"
    if not (isinstance(body["error"].get("message"), str) and body["error"]["message"]):
        return f"no message: {body}"
    return None


class Refusals:
    """Checks many bad requests; each must be refused and store nothing."""

    def __init__(self, app, client, auth):
        self.app, self.client, self.auth = app, client, auth
        self.artifact_id = create(client, auth, b"existing", filename="existing.txt")["artifact_id"]
        self.before = state(app)
        self.failures: list[str] = []

    def check(self, label: str, response, status: int = 400, code: str = "invalid_request") -> None:
        problem = error_of(response, status, code)
        if problem is None and state(self.app) != self.before:
            problem = "stored something"
            self.before = state(self.app)
        if problem is not None:
            self.failures.append(f"{label}: {problem}")

    def send(self, label: str, method: str, path: str, *, status=400, code="invalid_request", **kwargs):
        headers = {**self.auth, **kwargs.pop("headers", {})}
        path = path.format(id=self.artifact_id)
        self.check(label, self.client.open(path, method=method, headers=headers, **kwargs), status, code)

    def assert_all_refused(self) -> None:
        assert not self.failures, "\n".join(self.failures)


@pytest.fixture
def refusals(app, client, auth) -> Refusals:
    return Refusals(app, client, auth)


def deep(opener: str, closer: str, depth: int = DEEP) -> bytes:
    return (opener * depth + closer * depth).encode()


# ---------------------------------------------------------------- JSON shapes


# Bodies where a JSON object is expected.
NOT_AN_OBJECT = {
    "array": b"[]",
    "array-of-object": b'[{"filename": "a.txt"}]',
    "string": b'"filename"',
    "number": b"42",
    "null": b"null",
    "true": b"true",
    "deep-arrays": deep("[", "]"),
    "deep-objects": deep('{"a":', "}"),
    "deep-inside": b'{"filename": "a.txt", "metadata": ' + deep("[", "]") + b"}",
    "invalid-utf8": b'{"filename": "a\xff\xfe.txt", "content": "aGVsbG8=", "size_bytes": 5, "ttl": "1d"}',
    "overlong-utf8": b'{"filename": "a\xc0\xaf.txt", "content": "aGVsbG8=", "size_bytes": 5, "ttl": "1d"}',
    "truncated": b'{"filename": "a.txt", "content": "aGVs',
    "trailing-garbage": b'{"filename": "a.txt", "content": "aGVsbG8="} x',
    "huge-integer-literal": b'{"filename": "a.txt", "size_bytes": ' + b"9" * 5000 + b"}",
}

JSON_OBJECT_ROUTES = {
    "upload": "/v1/artifacts",
    "upload-url": "/v1/artifacts/upload-url",
    "extend-ttl": "/v1/artifacts/{id}/extend-ttl",
    "links": "/v1/artifacts/{id}/links",
    "v8-query": "/v8/artifacts",
}


@pytest.mark.parametrize("path", JSON_OBJECT_ROUTES.values(), ids=JSON_OBJECT_ROUTES.keys())
def test_json_that_is_not_an_object_is_400(refusals, path):
    for label, raw in NOT_AN_OBJECT.items():
        refusals.send(label, "POST", path, data=raw, headers=JSON)
    refusals.assert_all_refused()


def chunked_json(body: dict, size: int) -> dict:
    """Request arguments for `body` padded with spaces to `size` bytes, sent
    without a length as a server that decodes chunked framing hands it over."""
    raw = json.dumps(body).encode()
    return {
        "input_stream": io.BytesIO(raw + b" " * (size - len(raw))),
        "headers": {**JSON, "Transfer-Encoding": "chunked"},
        "environ_overrides": {"wsgi.input_terminated": True},
    }


# Valid JSON on each route, so that only the size can be wrong.
CHUNKED_JSON_ROUTES = {
    "v8-query": ("/v8/artifacts", {"hashes": [HASH]}, DEFAULT_JSON_LIMIT),
    "v8-events": ("/v8/artifacts/events", [EVENT], DEFAULT_JSON_LIMIT),
    "upload-url": ("/v1/artifacts/upload-url", {"filename": "a.bin", "size_bytes": 5}, DEFAULT_JSON_LIMIT),
    "links": ("/v1/artifacts/{id}/links", {}, DEFAULT_JSON_LIMIT),
}


@pytest.mark.parametrize(
    ("path", "body", "limit"), CHUNKED_JSON_ROUTES.values(), ids=CHUNKED_JSON_ROUTES.keys()
)
def test_a_chunked_json_body_over_its_cap_is_413(refusals, path, body, limit):
    for size in (limit + 1, limit + 64 * 1024, 3 * limit):
        refusals.send(
            f"{size} bytes", "POST", path, status=413, code="file_too_large", **chunked_json(body, size)
        )
    refusals.assert_all_refused()


@pytest.mark.parametrize(
    ("path", "body", "limit"), CHUNKED_JSON_ROUTES.values(), ids=CHUNKED_JSON_ROUTES.keys()
)
def test_a_chunked_json_body_of_exactly_its_cap_is_read(refusals, client, auth, path, body, limit):
    request = chunked_json(body, limit)
    request["headers"].update(auth)

    response = client.post(path.format(id=refusals.artifact_id), **request)

    assert response.status_code in (200, 201), response.data


def test_a_chunked_json_upload_over_its_cap_is_413(app, refusals, monkeypatch):
    monkeypatch.setitem(app.config, "JSON_UPLOAD_MAX_BYTES", 3000)
    cap = 3000 * 4 // 3 + 64 * 1024  # base64 and room for the other fields
    body = {"filename": "a.txt", "content": B64}
    for size in (cap + 1, 2 * cap):
        refusals.send(
            f"{size} bytes",
            "POST",
            "/v1/artifacts",
            status=413,
            code="file_too_large",
            **chunked_json(body, size),
        )
    refusals.assert_all_refused()


def test_a_utf8_encoded_lone_surrogate_in_a_filename_is_400(refusals):
    # Python's json decodes bytes with surrogatepass: the surrogate reaches
    # the filename rule, which must refuse it (it has no UTF-8 form to store).
    raw = b'{"filename": "a\xed\xa0\x80.txt", "content": "aGVsbG8=", "size_bytes": 5}'
    for path in ("/v1/artifacts", "/v1/artifacts/upload-url"):
        refusals.send(path, "POST", path, data=raw, headers=JSON)
    refusals.assert_all_refused()


NOT_AN_ARRAY = {
    "object": b'{"events": []}',
    "string": b'"HIT"',
    "number": b"1",
    "deep-arrays": deep("[", "]"),
    "deep-objects": b"[" + deep('{"a":', "}") + b"]",
    "invalid-utf8": b'[{"sessionId": "\xff", "source": "REMOTE", "event": "HIT", "hash": "ab"}]',
    "truncated": b'[{"sessionId": ',
}


def test_v8_events_that_are_not_an_array_of_events_are_400(refusals):
    for label, raw in NOT_AN_ARRAY.items():
        refusals.send(label, "POST", "/v8/artifacts/events", data=raw, headers=JSON)
    refusals.assert_all_refused()


def test_v8_event_durations_out_of_range_or_of_the_wrong_type_are_400(refusals):
    good = dict(EVENT, duration=12)
    for duration in (-1, -0.5, 2**53, 1e300, 10**400, True, False, "5", [5], {"ms": 5}):
        raw = json.dumps([good, dict(EVENT, duration=duration)]).encode()
        refusals.send(f"duration={duration!s:.20}", "POST", "/v8/artifacts/events", data=raw, headers=JSON)
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        raw = json.dumps([good, dict(EVENT, duration="X")]).encode().replace(b'"X"', constant)
        refusals.send(constant.decode(), "POST", "/v8/artifacts/events", data=raw, headers=JSON)
    refusals.assert_all_refused()


def test_v8_query_with_bad_hashes_is_400(refusals):
    for body in (
        {"hashes": "0123456789abcdef"},
        {"hashes": []},
        {"hashes": [HASH] * 101},
        {"hashes": [1]},
        {"hashes": [None]},
        {"hashes": [[HASH]]},
        {"hashes": None},
        {},
    ):
        refusals.send(str(body)[:40], "POST", "/v8/artifacts", json=body)
    refusals.assert_all_refused()


# ---------------------------------------------------------------- /v8 PUT headers


BAD_V8_HEADERS = [
    ("x-artifact-tag", "t" * 1025),
    ("x-artifact-sha", "s" * 129),
    ("x-artifact-dirty-hash", "d" * 129),
    ("x-artifact-client-ci", "c" * 51),
    ("x-artifact-duration", "-1"),
    ("x-artifact-duration", str(2**63)),
    ("x-artifact-duration", "9" * 5000),
    ("x-artifact-duration", "1.5"),
    ("x-artifact-duration", "1e3"),
    ("x-artifact-duration", "true"),
    ("x-artifact-duration", "0x10"),
    ("x-artifact-duration", "1_000"),
    ("x-artifact-duration", "+5"),
    ("x-artifact-duration", "NaN"),
    ("x-artifact-client-interactive", "2"),
    ("x-artifact-client-interactive", "yes"),
    # Sent back verbatim on every GET and HEAD, where gunicorn refuses a
    # control character: printable ASCII only.
    ("x-artifact-tag", "sig\x01nature"),
    ("x-artifact-tag", "sig\x7fnature"),
    ("x-artifact-tag", "sig\tnature"),
    ("x-artifact-tag", "sig\x1bnature"),
    ("x-artifact-tag", "signatüre"),
    ("x-artifact-sha", "9f2c1e0d\x01"),
    ("x-artifact-sha", "9f2c1e0d\x7f"),
    ("x-artifact-dirty-hash", "d1r7y\x01"),
    ("x-artifact-dirty-hash", "d1r7y\x7f"),
]


def test_v8_put_with_a_bad_header_is_400_and_stores_nothing(refusals, client, auth):
    for name, value in BAD_V8_HEADERS:
        label = f"{name}: {value[:12]!r} ({len(value)} chars)"
        refusals.send(label, "PUT", f"/v8/artifacts/{HASH}", data=b"body", headers={name: value})
    refusals.assert_all_refused()
    assert client.get(f"/v8/artifacts/{HASH}", headers=auth).status_code == 404


def test_v8_put_header_limits_are_inclusive(client, auth):
    headers = {
        "x-artifact-tag": "t" * 1024,
        "x-artifact-sha": "s" * 128,
        "x-artifact-dirty-hash": "d" * 128,
        "x-artifact-client-ci": "c" * 50,
        "x-artifact-duration": str(2**63 - 1),
    }

    assert client.put(f"/v8/artifacts/{HASH}", data=b"body", headers={**auth, **headers}).status_code == 202

    got = client.get(f"/v8/artifacts/{HASH}", headers=auth)
    assert got.headers["x-artifact-tag"] == "t" * 1024
    assert got.headers["x-artifact-duration"] == str(2**63 - 1)


def test_v8_put_keeps_every_printable_ascii_character(client, auth):
    printable = "".join(chr(code) for code in range(0x20, 0x7F))
    headers = {"x-artifact-tag": f"<{printable}>", "x-artifact-sha": "s" + printable[:100]}

    assert client.put(f"/v8/artifacts/{HASH}", data=b"body", headers={**auth, **headers}).status_code == 202

    got = client.get(f"/v8/artifacts/{HASH}", headers=auth)
    assert (got.headers["x-artifact-tag"], got.headers["x-artifact-sha"]) == (
        headers["x-artifact-tag"],
        headers["x-artifact-sha"],
    )


def test_an_oversized_authorization_header_is_401(refusals):
    huge = bearer("ak_live_" + "x" * 100_000)
    refusals.send(
        "v8", "PUT", f"/v8/artifacts/{HASH}", data=b"body", headers=huge, status=401, code="unauthorized"
    )
    refusals.send(
        "v1",
        "POST",
        "/v1/artifacts",
        json={"filename": "a", "content": B64},
        headers=huge,
        status=401,
        code="unauthorized",
    )
    refusals.assert_all_refused()


def test_invalid_utf8_in_the_hash_stores_nothing(refusals):
    # Werkzeug decodes the path leniently; the hash rule must still refuse it.
    refusals.send("%FF", "PUT", "/v8/artifacts/ab%FFcd", data=b"body")
    refusals.send("%C0%AF", "PUT", "/v8/artifacts/ab%C0%AFcd", data=b"body")
    refusals.assert_all_refused()


# ---------------------------------------------------------------- /v1 JSON upload fields


def upload_json(
    refusals: Refusals, label: str, *, headers=None, status=400, code="invalid_request", **fields
):
    body = {"filename": "ok.txt", "content": B64, **fields}
    refusals.send(label, "POST", "/v1/artifacts", json=body, headers=headers or {}, status=status, code=code)


BAD_BASE64 = {
    "garbage-chars": "aGVs$bG8=",
    "missing-padding": "aGVsbG8",
    "extra-padding": "aGVsbG8===",
    "padding-inside": "aGV=sbG8",
    "whitespace": "aGVs bG8=",
    "newline": "aGVs\nbG8=",
    "url-safe-alphabet": base64.urlsafe_b64encode(b"\xfb\xff\xbe").decode(),
    "one-char": "a",
    "non-ascii": "aGVsbG8é",
    "data-url": "data:text/plain;base64," + B64,
}


def test_base64_with_garbage_or_bad_padding_is_400(refusals):
    for label, content in BAD_BASE64.items():
        upload_json(refusals, label, content=content)
    refusals.assert_all_refused()


def test_json_upload_fields_of_the_wrong_type_or_size_are_400(refusals):
    for fields in (
        {"content": 12345},
        {"content": None},
        {"content": ["aGVsbG8="]},
        {"content_encoding": "gzip"},
        {"content_encoding": 64},
        {"filename": 7},
        {"filename": ["a.txt"]},
        {"filename": "x" * 256},
        {"filename": "a\ud800.txt"},
        {"filename": "a\x00.txt"},
        {"filename": "../a.txt"},
        {"session_id": "s" * 129},
        {"session_id": 5},
        {"agent_id": {"id": "a"}},
        {"content_type": "t" * 256},
        {"content_type": 5},
        {"content_type": "text/\u00e9"},
    ):
        upload_json(refusals, str(fields)[:40], **fields)
    refusals.assert_all_refused()


def metadata_of_size(size: int) -> dict:
    """{"k": "xxx..."} whose compact JSON is exactly `size` bytes."""
    return {"k": "x" * (size - len('{"k":""}'))}


BAD_METADATA = {
    "over-8kb": metadata_of_size(8 * 1024 + 1),
    "far-over": {"k": "x" * 200_000},
    "many-keys": {f"k{i}": "v" for i in range(2000)},
    "int-value": {"k": 1},
    "float-value": {"k": 1.5},
    "bool-value": {"k": True},
    "null-value": {"k": None},
    "object-value": {"k": {"nested": "v"}},
    "list-value": {"k": ["v"]},
    "nul-in-value": {"k": "a\x00b"},
    "surrogate-value": {"k": "\udc80"},
    "surrogate-string": "\ud800",  # the metadata as JSON text, with no UTF-8 form
    "surrogate-in-json-text": '{"k": "\ud800"}',
    "digit-first-key": {"1k": "v"},
    "dotted-key": {"a.b": "v"},
    "space-key": {"a b": "v"},
    "empty-key": {"": "v"},
    "long-key": {"k" * 65: "v"},
    "unicode-key": {"ключ": "v"},
    "array": ["k", "v"],
    "string-not-json": "k=v",
    "json-array-string": '["k", "v"]',
    "number": 5,
}


def test_bad_metadata_is_400_in_uploads_and_reservations(refusals):
    for label, metadata in BAD_METADATA.items():
        upload_json(refusals, f"upload {label}", metadata=metadata)
        body = {"filename": "big.bin", "size_bytes": 10, "metadata": metadata}
        refusals.send(f"reserve {label}", "POST", "/v1/artifacts/upload-url", json=body)
    refusals.assert_all_refused()


def test_metadata_of_exactly_8kb_is_accepted(client, auth):
    body = {"filename": "ok.txt", "content": B64, "metadata": metadata_of_size(8 * 1024)}
    assert client.post("/v1/artifacts", json=body, headers=auth).status_code == 201


BAD_TTLS = [
    "-1d",
    "0d",
    "1.5d",
    "1 d",
    "1D",
    "d",
    "99999999999w",  # eleven digits: not a TTL at all
    "P1D",
    "forever",
    5,
    -5,
    1.5,
    True,
    ["1d"],
    {"d": 1},
]


def test_bad_ttls_are_400(refusals, client, auth):
    for ttl in BAD_TTLS:
        upload_json(refusals, f"upload ttl={ttl}", ttl=ttl)
    # extend-ttl has no default to fall back on: empty and null are bad too.
    for ttl in [*BAD_TTLS, "", None]:
        refusals.send(f"extend ttl={ttl}", "POST", "/v1/artifacts/{id}/extend-ttl", json={"ttl": ttl})
    refusals.assert_all_refused()
    artifact = client.get(f"/v1/artifacts/{refusals.artifact_id}", headers=auth).get_json()
    assert artifact["expires_at"] is not None


def test_huge_ttls_exceed_the_plan(refusals):
    for ttl in ("9999999999w", "366d", "53w"):
        upload_json(refusals, f"upload {ttl}", ttl=ttl, code="ttl_exceeds_plan_limit")
        refusals.send(
            f"extend {ttl}",
            "POST",
            "/v1/artifacts/{id}/extend-ttl",
            json={"ttl": ttl},
            code="ttl_exceeds_plan_limit",
        )
    refusals.assert_all_refused()


def test_a_free_tenants_never_ttl_is_refused(app, client):
    _, key = make_tenant("freebie", plan="free")
    refusals = Refusals(app, client, bearer(key))

    upload_json(refusals, "never", ttl="never", code="ttl_exceeds_plan_limit")

    refusals.assert_all_refused()


def test_idempotency_key_over_256_characters_is_400(refusals, client, auth):
    upload_json(refusals, "257", headers={"Idempotency-Key": "k" * 257})
    upload_json(refusals, "control character", headers={"Idempotency-Key": "k\x01"})

    refusals.assert_all_refused()
    body = {"filename": "ok.txt", "content": B64}
    assert (
        client.post("/v1/artifacts", json=body, headers={**auth, "Idempotency-Key": "k" * 256}).status_code
        == 201
    )


# ---------------------------------------------------------------- numbers


def test_reservation_sizes_out_of_range_or_of_the_wrong_type(refusals):
    for size_bytes, status, code in (
        (-1, 400, "invalid_request"),
        (0, 400, "invalid_request"),
        (-(2**63), 400, "invalid_request"),
        (1.5, 400, "invalid_request"),
        (10.0, 400, "invalid_request"),
        (True, 400, "invalid_request"),
        ("10", 400, "invalid_request"),
        (None, 400, "invalid_request"),
        ([10], 400, "invalid_request"),
        (1e400, 400, "invalid_request"),  # Infinity once parsed
        (5 * 1024**3 + 1, 413, "file_too_large"),
        (2**63, 413, "file_too_large"),
        (10**30, 413, "file_too_large"),
    ):
        body = {"filename": "big.bin", "size_bytes": size_bytes}
        refusals.send(
            f"size_bytes={size_bytes}",
            "POST",
            "/v1/artifacts/upload-url",
            json=body,
            status=status,
            code=code,
        )
    refusals.assert_all_refused()


def test_link_lifetimes_out_of_range_or_of_the_wrong_type_are_400(refusals):
    for expires_in in (-1, 0, -(2**63), 1.5, 60.0, True, "60", [60], 1e400, 2**63, 10**30, 91 * 86400):
        refusals.send(
            f"expires_in={expires_in}", "POST", "/v1/artifacts/{id}/links", json={"expires_in": expires_in}
        )
    refusals.assert_all_refused()


def test_non_finite_numbers_are_400(refusals):
    for path, field in (
        ("/v1/artifacts/upload-url", "size_bytes"),
        ("/v1/artifacts/{id}/links", "expires_in"),
    ):
        for constant in (b"NaN", b"Infinity", b"-Infinity"):
            raw = b'{"filename": "big.bin", "%s": %s}' % (field.encode(), constant)
            refusals.send(f"{field}={constant.decode()}", "POST", path, data=raw, headers=JSON)
    refusals.assert_all_refused()


def test_listing_limits_out_of_range_are_400(refusals):
    for path in ("/v1/artifacts", "/v1/sessions"):
        for limit in ("-1", "0", "201", "1.5", "abc", "9" * 5000, "true", "1e2", "0x10", " 5x"):
            refusals.send(f"{path}?limit={limit[:10]}", "GET", path, query_string={"limit": limit})
    refusals.assert_all_refused()


def test_bad_listing_queries_are_400(refusals):
    for query in (
        {"cursor": "!!!"},
        {"cursor": "e30"},  # {}
        {"cursor": base64.urlsafe_b64encode(b"[1, 2]").decode()},
        {"cursor": base64.urlsafe_b64encode(b'["2026-01-01T00:00:00", "../etc"]').decode()},
        {"created_after": "yesterday"},
        {"created_before": "2026-13-01T00:00:00Z"},
        {"metadata.1bad": "x"},
        {"metadata.": "x"},
        {"session_id": "a\x00b"},
    ):
        refusals.send(str(query)[:50], "GET", "/v1/artifacts", query_string=query)
    for after in ("!!!", "e30", base64.urlsafe_b64encode(b'["2026-01-01T00:00:00", 5]').decode()):
        refusals.send(f"after={after}", "GET", "/v1/sessions", query_string={"after": after})
    refusals.assert_all_refused()


# 3 000 levels: past Python's recursion limit, yet 4 000 characters, well
# within gunicorn's 8 190-byte request line, so a real client can send it.
DEEP_CURSOR = base64.urlsafe_b64encode(b"[" * 3000).decode()


@pytest.mark.parametrize(("path", "param"), [("/v1/artifacts", "cursor"), ("/v1/sessions", "after")])
def test_a_deeply_nested_cursor_is_400(refusals, path, param):
    refusals.send(param, "GET", path, query_string={param: DEEP_CURSOR})
    refusals.assert_all_refused()


# ---------------------------------------------------------------- multipart


def multipart(*parts: tuple[bytes, bytes], end: bool = True) -> bytes:
    """Parts given as (raw Content-Disposition and other header lines, body)."""
    out = b""
    for head, body in parts:
        out += f"--{BOUNDARY}\r\n".encode() + head + b"\r\n\r\n" + body + b"\r\n"
    return out + (f"--{BOUNDARY}--\r\n".encode() if end else b"")


def file_part(filename: bytes = b"a.txt", data: bytes = b"hello") -> tuple[bytes, bytes]:
    return b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"', data


def text_part(name: str, value: bytes) -> tuple[bytes, bytes]:
    return f'Content-Disposition: form-data; name="{name}"'.encode(), value


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

BAD_MULTIPART = {
    "no-file-part": multipart(text_part("filename", b"a.txt"), text_part("ttl", b"1d")),
    "two-file-parts": multipart(file_part(b"a.txt"), file_part(b"b.txt")),
    "text-only-file-field": multipart(text_part("file", b"hello"), text_part("filename", b"a.txt")),
    "file-part-under-another-name": multipart(
        (b'Content-Disposition: form-data; name="upload"; filename="a.txt"', b"hello")
    ),
    "no-parts": f"--{BOUNDARY}--\r\n".encode(),
    "empty-body": b"",
    "no-closing-boundary": multipart(file_part(), end=False),
    "garbage": b"this is not multipart at all",
    # Werkzeug cannot decode the part's headers and drops the whole form.
    "invalid-utf8-part-filename": multipart(file_part(b"a\xff\xfe.txt")),
    "overlong-utf8-part-filename": multipart(file_part(b"a\xc0\xaf.txt")),
    "slash-in-part-filename": multipart(file_part(b"../../etc/passwd")),
    "metadata-not-json": multipart(text_part("metadata", b"{k: v}"), file_part()),
    "metadata-array": multipart(text_part("metadata", b'["k", "v"]'), file_part()),
    "metadata-int-value": multipart(text_part("metadata", b'{"k": 1}'), file_part()),
    "metadata-bad-key": multipart(text_part("metadata", b'{"1k": "v"}'), file_part()),
    "metadata-over-8kb": multipart(
        text_part("metadata", json.dumps(metadata_of_size(8 * 1024 + 1)).encode()), file_part()
    ),
    "metadata-deep": multipart(text_part("metadata", deep("[", "]", 10_000)), file_part()),
    # Past Werkzeug's in-memory limit for a text field (MAX_FORM_MEMORY_SIZE).
    "metadata-over-the-form-field-limit": multipart(
        text_part("metadata", json.dumps({"k": "x" * 200_000}).encode()), file_part()
    ),
    "metadata-deep-over-the-form-field-limit": multipart(text_part("metadata", deep("[", "]")), file_part()),
    "ttl-negative": multipart(text_part("ttl", b"-5d"), file_part()),
    "ttl-huge-digits": multipart(text_part("ttl", b"99999999999w"), file_part()),
    "session-id-too-long": multipart(text_part("session_id", b"s" * 129), file_part()),
    "too-many-parts": multipart(*[text_part(f"f{i}", b"x") for i in range(1001)], file_part()),
}


def test_bad_multipart_is_400_and_stores_nothing(refusals):
    for label, body in BAD_MULTIPART.items():
        refusals.send(label, "POST", "/v1/artifacts", data=body, headers=MULTIPART)
    for content_type in (
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=other",
    ):
        refusals.send(
            content_type,
            "POST",
            "/v1/artifacts",
            data=multipart(file_part()),
            headers={"Content-Type": content_type},
        )
    refusals.assert_all_refused()


@pytest.mark.parametrize(
    "body",
    [
        multipart(text_part("filename", b"ok\xff.txt"), file_part()),
        multipart(text_part("session_id", b"s\xff"), file_part()),
        multipart(text_part("metadata", b'{"k": "v\xff"}'), file_part()),
        multipart((b"Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''a%FF.txt", b"hello")),
    ],
    ids=["filename-field", "session-id-field", "metadata-field", "rfc5987-filename"],
)
def test_invalid_utf8_in_multipart_text_is_400(refusals, body):
    refusals.send("invalid UTF-8", "POST", "/v1/artifacts", data=body, headers=MULTIPART)
    refusals.assert_all_refused()


# Names that show as something they are not; the SDK's pull writes them to disk.
INVISIBLE_FILENAMES = {
    "right-to-left-override": "invoice\u202etxt.exe",
    "left-to-right-isolate": "a\u2066b.txt",
    "pop-directional-isolate": "report.pdf\u2069",
    "arabic-letter-mark": "a\u061c.txt",
    "zero-width-space": "report\u200b.pdf",
    "zero-width-joiner": "a\u200d.txt",
    "word-joiner": "a\u2060.txt",
    "byte-order-mark": "\ufeffa.txt",
    "soft-hyphen": "re\u00adport.pdf",
    "line-separator": "a\u2028b.txt",
    "paragraph-separator": "a\u2029b.txt",
    "hangul-filler": "a\u3164.txt",
    "combining-grapheme-joiner": "a\u034f.txt",
    "variation-selector": "a\ufe0f.txt",
    "tag-character": "a\U000e0041.txt",
}


def test_invisible_and_direction_changing_filename_characters_are_400(refusals):
    for label, name in INVISIBLE_FILENAMES.items():
        upload_json(refusals, f"json {label}", filename=name)
        body = {"filename": name, "size_bytes": 10}
        refusals.send(f"reserve {label}", "POST", "/v1/artifacts/upload-url", json=body)
        encoded = name.encode()
        refusals.send(
            f"multipart part {label}",
            "POST",
            "/v1/artifacts",
            data=multipart(file_part(encoded)),
            headers=MULTIPART,
        )
        refusals.send(
            f"multipart field {label}",
            "POST",
            "/v1/artifacts",
            data=multipart(text_part("filename", encoded), file_part()),
            headers=MULTIPART,
        )
    refusals.assert_all_refused()


def test_the_refusal_names_the_character(client, auth):
    body = {"filename": "invoice\u202etxt.exe", "content": B64}

    message = client.post("/v1/artifacts", json=body, headers=auth).get_json()["error"]["message"]

    assert "U+202E" in message and "RIGHT-TO-LEFT OVERRIDE" in message


@pytest.mark.parametrize("name", ["résumé final.pdf", "日本語.txt", "🚀.tar.gz", "Ελληνικά.md", "עברית.txt"])
def test_visible_unicode_filenames_are_kept(client, auth, name):
    body = {"filename": name, "content": B64}

    response = client.post("/v1/artifacts", json=body, headers=auth)

    assert response.status_code == 201, response.data
    assert response.get_json()["filename"] == name


def test_the_form_field_limit_does_not_refuse_a_large_file_part(client, auth):
    # Fails whenever a 64 KiB read ends with a CR or LF near its end (kept
    # back as a possible boundary start): likely for random bytes, certain
    # for most text files.
    data = random.Random(4).randbytes(4 * 1024 * 1024)

    response = client.post(
        "/v1/artifacts", data=multipart(file_part(data=data)), headers={**auth, **MULTIPART}
    )

    assert response.status_code == 201, response.data[:300]
    assert response.get_json()["size_bytes"] == len(data)


# ---------------------------------------------------------------- at the server's edge


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """Hoard under gunicorn, whose own limits refuse a request before Flask sees it."""
    with HoardServer(var_dir=tmp_path_factory.mktemp("bad-input"), workers=1, threads=2) as server:
        yield server


def raw_exchange(server, head: str) -> tuple[int, str, bytes]:
    """(status, Content-Type, body) for a request head sent as is."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head_part, _, body = received.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    content_type = next(
        (line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("content-type:")), ""
    )
    return int(lines[0].split()[1]), content_type, body


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/v8/artifacts/0123456789abcdef", "x-artifact-tag: " + "t" * 9000 + "\r\n"),
        ("/v1/whoami", "Authorization: Bearer " + "x" * 9000 + "\r\n"),
        ("/v1/whoami", "".join(f"X-Filler-{i}: v\r\n" for i in range(120))),
        ("/v1/artifacts?filename=" + "x" * 9000, ""),
    ],
    ids=["v8-long-header", "v1-long-authorization", "v1-too-many-headers", "v1-long-request-line"],
)
def test_requests_over_the_servers_header_limits_get_a_json_4xx(live, path, extra):
    status, content_type, body = raw_exchange(
        live, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}"
    )

    assert status in (400, 413, 414, 431)
    assert content_type.startswith("application/json"), body[:200]
    error = json.loads(body)
    if path.startswith("/v8/"):
        assert error["code"] == error["error"]["code"]
    else:
        assert error["error"]["status"] == status
