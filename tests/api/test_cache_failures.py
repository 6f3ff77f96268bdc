"""The /v8 cache under real gunicorn on PostgreSQL, fed broken and streamed
bodies over raw sockets: what reaches storage, and what is left behind."""

import hashlib
import json
import os
import re
import socket
import time
import uuid

import pytest
import requests

from tests.live_server import HoardServer

MAX_BYTES = 32 * 1024 * 1024
LARGE = 20 * 1000 * 1000


@pytest.fixture(scope="module")
def hoard(new_postgres_database, tmp_path_factory):
    with HoardServer(
        var_dir=tmp_path_factory.mktemp("hoard-failures"),
        database_url=new_postgres_database(),
        workers=1,
        threads=4,
        env_overrides={"CACHE_MAX_ARTIFACT_BYTES": MAX_BYTES},
    ) as server:
        yield server


@pytest.fixture(scope="module")
def acme(hoard):
    return hoard.create_tenant("acme")


@pytest.fixture
def artifact_hash():
    """A hash of its own per test, so access-log lines can be told apart."""
    return uuid.uuid4().hex[:16]


# ---------------------------------------------------------------- helpers


def url(hoard, artifact_hash: str) -> str:
    return f"{hoard.url}/v8/artifacts/{artifact_hash}"


def auth(tenant) -> dict:
    return {"Authorization": f"Bearer {tenant.key}"}


def request_head(hoard, tenant, artifact_hash: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"PUT /v8/artifacts/{artifact_hash} HTTP/1.1",
        f"Host: 127.0.0.1:{hoard.port}",
        f"Authorization: Bearer {tenant.key}",
        "Content-Type: application/octet-stream",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send_and_close(hoard, data: bytes) -> None:
    """Send, then drop the connection without waiting for an answer."""
    sock = socket.create_connection(("127.0.0.1", hoard.port), timeout=10)
    sock.sendall(data)
    sock.close()


def send_and_read(hoard, data: bytes, *, half_close: bool = True, timeout: float = 10) -> tuple[int, dict]:
    """Send, optionally end our side, and return the status and JSON answer."""
    with socket.create_connection(("127.0.0.1", hoard.port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before a response: {received!r}"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed inside the response body"
            body += chunk
    status = int(head.split(b" ", 2)[1])
    assert re.search(rb"(?im)^content-type:\s*application/json", head)
    return status, json.loads(body[:length])


def chunked(*parts: bytes) -> bytes:
    return b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in parts) + b"0\r\n\r\n"


def eventually(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def handled(hoard, artifact_hash: str, status: int) -> bool:
    """Whether gunicorn logged a PUT of the hash answered with the status."""
    log = hoard.log_path.read_text(errors="replace")
    return re.search(rf'"PUT /v8/artifacts/{artifact_hash} HTTP/1\.1" {status} ', log) is not None


def partial_files(hoard) -> list[str]:
    tmp = hoard.var_dir / "storage" / ".tmp"
    return sorted(name for name in os.listdir(tmp) if name.endswith(".part")) if tmp.exists() else []


def put_previous(hoard, tenant, artifact_hash: str) -> bytes:
    body = os.urandom(256 * 1024)
    response = requests.put(
        url(hoard, artifact_hash),
        data=body,
        headers={**auth(tenant), "x-artifact-duration": "11", "x-artifact-tag": "previous-tag"},
        timeout=10,
    )
    assert response.status_code == 202
    return body


def assert_previous_intact(hoard, tenant, artifact_hash: str, body: bytes) -> None:
    response = requests.get(url(hoard, artifact_hash), headers=auth(tenant), timeout=10)
    assert response.status_code == 200
    assert response.content == body
    assert response.headers["Content-Length"] == str(len(body))
    assert response.headers["x-artifact-duration"] == "11"
    assert response.headers["x-artifact-tag"] == "previous-tag"


# ---------------------------------------------------------------- broken bodies


def test_a_body_cut_short_by_a_dropped_connection_stores_nothing(hoard, acme, artifact_hash):
    previous = put_previous(hoard, acme, artifact_hash)
    head = request_head(
        hoard,
        acme,
        artifact_hash,
        {"Content-Length": "1000000", "x-artifact-duration": "99", "x-artifact-tag": "new-tag"},
    )

    send_and_close(hoard, head + os.urandom(300_000))

    assert eventually(lambda: handled(hoard, artifact_hash, 400)), "the cut-short PUT was never answered"
    assert_previous_intact(hoard, acme, artifact_hash, previous)
    assert eventually(lambda: partial_files(hoard) == [])


def test_a_body_shorter_than_its_content_length_is_a_400(hoard, acme, artifact_hash):
    previous = put_previous(hoard, acme, artifact_hash)
    head = request_head(hoard, acme, artifact_hash, {"Content-Length": "500000", "x-artifact-duration": "99"})

    status, body = send_and_read(hoard, head + b"z" * 123_456)

    assert status == 400
    assert body["code"] == body["error"]["code"] == "invalid_request"
    assert_previous_intact(hoard, acme, artifact_hash, previous)
    assert eventually(lambda: partial_files(hoard) == [])


def test_a_chunked_body_cut_short_stores_nothing(hoard, acme, artifact_hash):
    previous = put_previous(hoard, acme, artifact_hash)
    head = request_head(hoard, acme, artifact_hash, {"Transfer-Encoding": "chunked"})
    # A chunk announced as 64 KiB of which only 1 000 bytes arrive.
    truncated = chunked(b"a" * 4096)[: -len(b"0\r\n\r\n")] + b"10000\r\n" + b"b" * 1000

    status, body = send_and_read(hoard, head + truncated)

    assert status == 400
    assert body["code"] == body["error"]["code"] == "invalid_request"
    assert_previous_intact(hoard, acme, artifact_hash, previous)
    assert eventually(lambda: partial_files(hoard) == [])


def test_malformed_chunk_framing_is_a_400_not_a_server_fault(hoard, acme, artifact_hash):
    head = request_head(hoard, acme, artifact_hash, {"Transfer-Encoding": "chunked"})

    status, body = send_and_read(hoard, head + b"5\r\nhello\r\nzz\r\nnot hex\r\n0\r\n\r\n")

    assert status == 400
    assert body["code"] == body["error"]["code"] == "invalid_request"
    missing = requests.head(url(hoard, artifact_hash), headers=auth(acme), timeout=10)
    assert missing.status_code == 404
    assert eventually(lambda: partial_files(hoard) == [])


def test_an_announced_length_over_the_max_is_refused_before_the_body_is_sent(hoard, acme, artifact_hash):
    head = request_head(hoard, acme, artifact_hash, {"Content-Length": str(MAX_BYTES + 1)})

    # Only the head is sent: the answer must not wait for the body.
    status, body = send_and_read(hoard, head, half_close=False, timeout=5)

    assert status == 413
    assert body["code"] == body["error"]["code"] == "file_too_large"
    assert partial_files(hoard) == []


# ---------------------------------------------------------------- streaming that works


def test_a_chunked_put_round_trips(hoard, acme, artifact_hash):
    parts = [os.urandom(size) for size in (1, 65536, 1_000_003, 17)]

    response = requests.put(
        url(hoard, artifact_hash),
        data=iter(parts),
        headers={**auth(acme), "x-artifact-duration": "321", "x-artifact-tag": "chunked-tag"},
        timeout=10,
    )

    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 202
    got = requests.get(url(hoard, artifact_hash), headers=auth(acme), timeout=10)
    assert got.content == b"".join(parts)
    assert got.headers["Content-Length"] == str(sum(map(len, parts)))
    assert (got.headers["x-artifact-duration"], got.headers["x-artifact-tag"]) == ("321", "chunked-tag")


def test_a_raw_chunked_put_round_trips(hoard, acme, artifact_hash):
    parts = [b"first,", os.urandom(70_000), b"last"]
    head = request_head(hoard, acme, artifact_hash, {"Transfer-Encoding": "chunked"})

    status, body = send_and_read(hoard, head + chunked(*parts), half_close=False)

    assert status == 202
    assert body["urls"][0].endswith(f"/v8/artifacts/{artifact_hash}")
    got = requests.get(url(hoard, artifact_hash), headers=auth(acme), timeout=10)
    assert got.content == b"".join(parts)


def test_a_large_artifact_downloads_byte_identical_with_its_length(hoard, acme, artifact_hash):
    body = os.urandom(LARGE)
    put = requests.put(url(hoard, artifact_hash), data=body, headers=auth(acme), timeout=30)
    assert put.status_code == 202

    digest = hashlib.sha256()
    received = 0
    with requests.get(url(hoard, artifact_hash), headers=auth(acme), stream=True, timeout=30) as got:
        assert got.status_code == 200
        assert got.headers["Content-Length"] == str(LARGE)
        assert got.headers["Content-Type"] == "application/octet-stream"
        assert got.headers["x-artifact-duration"] == "0"
        assert "Content-Encoding" not in got.headers
        for chunk in got.raw.stream(1024 * 1024, decode_content=False):
            digest.update(chunk)
            received += len(chunk)

    assert received == LARGE
    assert digest.hexdigest() == hashlib.sha256(body).hexdigest()
    head = requests.head(url(hoard, artifact_hash), headers=auth(acme), timeout=10)
    assert head.headers["Content-Length"] == str(LARGE)
    assert head.content == b""
