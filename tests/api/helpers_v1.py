"""Helpers for the /v1 API tests: requests shaped the way the official
clients send them (../shared/specs/artifacts-v1.md, artifacta-sdk notes),
and the assertions every test makes about envelopes and objects."""

import base64
import io
import re
from datetime import datetime
from urllib.parse import urlsplit

import requests

from app.extensions import db

# whoami's figures that the clients read as integers; null would crash the CLI.
WHOAMI_INT_FIELDS = (
    "usage_requests_month",
    "plan_requests_limit_month",
    "usage_storage_bytes",
    "plan_storage_limit_bytes",
    "active_links",
    "max_active_links",
    "rate_limit_sustained",
    "rate_limit_burst",
)

ARTIFACT_FIELDS = {
    "artifact_id",
    "filename",
    "content_type",
    "size_bytes",
    "content_hash",
    "session_id",
    "agent_id",
    "metadata",
    "status",
    "created_at",
    "expires_at",
    "deleted_at",
}
ARTIFACT_ID = re.compile(r"^art_[A-Za-z0-9]{16}$")
LINK_ID = re.compile(r"^lnk_[A-Za-z0-9]{20}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")
MISSING_ID = "art_0000000000000000"
BOUNDARY = "hoard-test-boundary-7MA4YWxkTrZu0gW"
UPGRADE_URL = "https://artifacta.io/pricing"


# ---------------------------------------------------------------- assertions


def assert_error(response, status: int, code: str) -> dict:
    """The /v1 envelope, exactly: {"error": {"code", "message", "status", ...}}."""
    assert response.status_code == status, response.data[:500]
    assert response.mimetype == "application/json"
    if response.request.method == "HEAD":
        assert response.data == b""
        return {}
    body = response.get_json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, error
    assert error["status"] == status
    assert isinstance(error["message"], str) and error["message"]
    return error


def assert_artifact(body: dict, **expected) -> dict:
    """Every field, typed as the clients format them, plus the given values."""
    assert set(body) == ARTIFACT_FIELDS, body
    assert ARTIFACT_ID.match(body["artifact_id"])
    assert isinstance(body["size_bytes"], int) and not isinstance(body["size_bytes"], bool)
    assert isinstance(body["metadata"], dict)
    assert body["status"] in ("pending", "active")
    assert TIMESTAMP.match(body["created_at"])
    for name in ("expires_at", "deleted_at"):
        assert body[name] is None or TIMESTAMP.match(body[name])
    if body["status"] == "active":
        assert re.fullmatch(r"[0-9a-f]{64}", body["content_hash"])
    for name, value in expected.items():
        assert body[name] == value, (name, body[name], value)
    return body


def ts(value: str) -> datetime:
    """A wire timestamp as the naive UTC datetime the app keeps."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")


def wire(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def path_of(url: str) -> str:
    """A URL the app handed out, as a path the test client can request."""
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc == "localhost", url
    return parts.path + (f"?{parts.query}" if parts.query else "")


def count_rows(model) -> int:
    from sqlalchemy import func, select

    db.session.rollback()  # see the requests' commits, hold no snapshot
    try:
        return db.session.scalar(select(func.count()).select_from(model))
    finally:
        db.session.rollback()


# ---------------------------------------------------------------- requests


def _quote_filename(name: str) -> bytes:
    """httpx's multipart filename encoding: '"' and controls as %XX, '\\'
    doubled, everything else raw UTF-8."""
    out = []
    for char in name:
        if char == '"' or ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"%{ord(char):02X}")
        elif char == "\\":
            out.append("\\\\")
        else:
            out.append(char)
    return "".join(out).encode()


def multipart_body(
    fields=(), *, data: bytes = b"hello", filename: str | None = "hello.txt", part_type: str | None = None
) -> bytes:
    """Text fields first, then the `file` part, as the SDK sends them."""
    chunks = []
    for name, value in fields:
        chunks += [
            f"--{BOUNDARY}\r\n".encode(),
            f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode(),
            value.encode() + b"\r\n",
        ]
    disposition = b'Content-Disposition: form-data; name="file"'
    if filename is not None:
        disposition += b'; filename="' + _quote_filename(filename) + b'"'
    chunks += [f"--{BOUNDARY}\r\n".encode(), disposition + b"\r\n"]
    if part_type is not None:
        chunks.append(f"Content-Type: {part_type}\r\n".encode())
    chunks += [b"\r\n", data, f"\r\n--{BOUNDARY}--\r\n".encode()]
    return b"".join(chunks)


def upload(
    client,
    auth,
    data: bytes = b"hello",
    *,
    filename: str | None = "hello.txt",
    part_type: str | None = "text/plain",
    fields: dict | list | None = None,
    headers: dict | None = None,
    chunked: bool = False,
):
    """POST /v1/artifacts as multipart/form-data."""
    pairs = list(fields.items()) if isinstance(fields, dict) else list(fields or [])
    body = multipart_body(pairs, data=data, filename=filename, part_type=part_type)
    all_headers = {**auth, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **(headers or {})}
    if chunked:
        # As a server that decodes chunked transfer encoding hands it over.
        return client.post(
            "/v1/artifacts",
            input_stream=io.BytesIO(body),
            headers={**all_headers, "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
    return client.post("/v1/artifacts", data=body, headers=all_headers)


def upload_json(client, auth, data: bytes = b"hello", *, headers: dict | None = None, **fields):
    """POST /v1/artifacts as JSON with base64 content."""
    body = {"filename": "hello.txt", "content": base64.b64encode(data).decode(), **fields}
    return client.post("/v1/artifacts", json=body, headers={**auth, **(headers or {})})


def create(client, auth, data: bytes = b"hello", **fields) -> dict:
    """An active artifact made through the JSON form; its body."""
    response = upload_json(client, auth, data, **fields)
    assert response.status_code == 201, response.data
    return response.get_json()


def reserve(client, auth, size: int = 5, **fields):
    body = {"filename": "big.bin", "content_type": "application/x-tar", "size_bytes": size, **fields}
    return client.post("/v1/artifacts/upload-url", json=body, headers=auth)


class ExternalResponse:
    """A response from outside the app (the S3 endpoint), shaped like the test client's."""

    def __init__(self, response: requests.Response):
        self.status_code = response.status_code
        self.data = response.content
        self.headers = response.headers


def put_bytes(client, ticket: dict, data: bytes, headers: dict | None = None):
    """The presigned PUT as the SDK makes it: upload_headers only, no auth.
    Hoard's own URL goes through the test client; an S3 one over HTTP."""
    url = ticket["upload_url"]
    headers = {**(ticket["upload_headers"] or {}), **(headers or {})}
    if urlsplit(url).netloc == "localhost":
        return client.put(path_of(url), data=data, headers=headers)
    return ExternalResponse(requests.put(url, data=data, headers=headers, timeout=30))


def download_path(client, auth, artifact_id: str) -> str:
    response = client.get(f"/v1/artifacts/{artifact_id}/download-url", headers=auth)
    assert response.status_code == 200, response.data
    return path_of(response.get_json()["download_url"])


def make_link(client, auth, artifact_id: str, **body):
    return client.post(f"/v1/artifacts/{artifact_id}/links", json=body or None, headers=auth)
