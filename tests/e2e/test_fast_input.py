"""Request bodies read straight from gunicorn's socket keep HTTP/1.1
keep-alive exact: pipelined requests and unread bodies stay in step."""

import hashlib
import os
import socket

import pytest
import requests
import urllib3

from tests.live_server import HoardServer


@pytest.fixture(scope="module")
def server(new_postgres_database, tmp_path_factory):
    with HoardServer(
        var_dir=tmp_path_factory.mktemp("fast-input"), database_url=new_postgres_database()
    ) as hoard:
        yield hoard, hoard.create_tenant("pipelined")


def _put(path: str, key: str, body: bytes) -> bytes:
    return (
        f"PUT {path} HTTP/1.1\r\nHost: hoard\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _get(path: str, key: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: hoard\r\nAuthorization: Bearer {key}\r\n\r\n".encode()


def _read_responses(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """Parse `count` Content-Length-framed responses off the connection."""
    data = b""
    responses = []
    while len(responses) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(responses)} responses"
            data += chunk
        head, data = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length"))
        while len(data) < length:
            data += sock.recv(65536)
        responses.append((status, data[:length]))
        data = data[length:]
    return responses


def test_pipelined_uploads_in_one_packet_are_each_stored_whole(server):
    hoard, tenant = server
    first, second = os.urandom(300_000), os.urandom(5_000)
    # The second request's bytes arrive with the end of the first body: the
    # reader must hand them back to gunicorn intact. (Reads go over fresh
    # connections: gunicorn's gthread worker waits on the socket for a
    # request it already buffered, so deeper pipelines stall in gunicorn.)
    with socket.create_connection(("127.0.0.1", hoard.port)) as sock:
        sock.sendall(
            _put("/v8/artifacts/pipe1", tenant.key, first) + _put("/v8/artifacts/pipe2", tenant.key, second)
        )
        responses = _read_responses(sock, 2)
    assert [status for status, _ in responses] == [202, 202]
    for name, body in (("pipe1", first), ("pipe2", second)):
        with socket.create_connection(("127.0.0.1", hoard.port)) as sock:
            sock.sendall(_get(f"/v8/artifacts/{name}", tenant.key))
            assert _read_responses(sock, 1) == [(200, body)]


def test_an_unread_body_still_on_the_way_closes_the_connection(server):
    # The 401 goes out before the body is read; waiting for 2 MB nobody wants
    # would hold a thread, so the connection ends after the response.
    hoard, tenant = server
    body = os.urandom(2_000_000)
    with socket.create_connection(("127.0.0.1", hoard.port)) as sock:
        sock.sendall(_put("/v8/artifacts/unread1", "ak_live_" + "0" * 32, body))
        sock.sendall(_get("/health", tenant.key))
        assert _read_responses(sock, 1)[0][0] == 401
        sock.settimeout(30)
        assert sock.recv(65536) == b""


def test_an_unread_body_already_received_is_discarded_and_the_connection_goes_on(server):
    hoard, tenant = server
    with socket.create_connection(("127.0.0.1", hoard.port)) as sock:
        sock.sendall(
            _put("/v8/artifacts/unread2", "ak_live_" + "0" * 32, b"x" * 100) + _get("/health", tenant.key)
        )
        responses = _read_responses(sock, 2)
    assert responses[0][0] == 401
    assert responses[1][0] == 200
    assert b'"status":"ok"' in responses[1][1]


def test_chunked_bodies_without_a_length_are_stored_whole(server):
    # gunicorn decodes these itself, with a reader that has read() only.
    hoard, tenant = server
    body = os.urandom(3_000_000)
    pieces = [body[i : i + 700_001] for i in range(0, len(body), 700_001)]
    auth = {"Authorization": f"Bearer {tenant.key}"}
    put = requests.put(f"{hoard.url}/v8/artifacts/chunked1", data=iter(pieces), headers=auth)
    assert put.status_code == 202, put.text
    assert requests.get(f"{hoard.url}/v8/artifacts/chunked1", headers=auth).content == body

    fields = {"file": ("build.tar", body, "application/x-tar")}
    encoded, content_type = urllib3.encode_multipart_formdata(fields)
    step = 65_536
    upload = requests.post(
        f"{hoard.url}/v1/artifacts",
        data=(encoded[i : i + step] for i in range(0, len(encoded), step)),
        headers={**auth, "Content-Type": content_type},
    )
    assert upload.status_code == 201, upload.text
    artifact = upload.json()
    assert artifact["size_bytes"] == len(body)
    assert artifact["content_hash"] == hashlib.sha256(body).hexdigest()
