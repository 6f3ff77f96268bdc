"""Slow clients cannot take the server down: gunicorn with its default
workers and threads, and more slow clients of each kind than it has threads.

Each kind of slow client connects from its own loopback address (Linux
routes all of 127/8 to lo), so the normal client on 127.0.0.1 is another
client address. Timings are never asserted, only generous "did not hang"
timeouts: the machine may be slow and loaded.
"""

import contextlib
import json
import os
import runpy
import selectors
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from tests import services_env
from tests.live_server import ROOT, HoardServer

IDLE_TIMEOUT = 3
HEADER_TIMEOUT = 6
DOWNLOAD_BYTES = 16 * 1024 * 1024
HANG = 60  # seconds after which a request that should answer has hung
SLOW_HEADER_ADDRESS = "127.0.0.2"
SLOW_BODY_ADDRESS = "127.0.0.3"
NEVER_READING_ADDRESS = "127.0.0.4"
STALLED_UPLOAD_ADDRESS = "127.0.0.5"
CONNECTION_CAP = 16


def _server(var_dir: Path, database_url: str, workers: int | None = None, **settings) -> HoardServer:
    return HoardServer(
        var_dir=var_dir,
        database_url=database_url,
        # gunicorn.conf.py's own worker and thread counts (unless told):
        # those are what slow clients would face in production.
        workers=workers,
        threads=None,
        env_overrides={"RATELIMIT_STORAGE_URI": services_env.REDIS_URL, **settings},
    )


@pytest.fixture(scope="module")
def hoard(new_postgres_database, tmp_path_factory):
    services_env.require(services_env.REDIS_URL, "Redis")
    server = _server(
        tmp_path_factory.mktemp("slow-clients"),
        new_postgres_database(),
        CLIENT_IDLE_TIMEOUT_SECONDS=IDLE_TIMEOUT,
        CLIENT_HEADER_TIMEOUT_SECONDS=HEADER_TIMEOUT,
    )
    with server:
        yield server, server.create_tenant("patient")


@pytest.fixture(scope="module")
def lenient_hoard(new_postgres_database, tmp_path_factory):
    """Timeouts far beyond the test: only the per-address limits protect it.
    One worker, so which worker the kernel hands a connection to cannot
    decide the outcome."""
    services_env.require(services_env.REDIS_URL, "Redis")
    server = _server(
        tmp_path_factory.mktemp("slow-clients-lenient"),
        new_postgres_database(),
        workers=1,
        CLIENT_IDLE_TIMEOUT_SECONDS=600,
        CLIENT_HEADER_TIMEOUT_SECONDS=600,
        MAX_CONNECTIONS_PER_ADDRESS=CONNECTION_CAP,
    )
    with server:
        yield server, server.create_tenant("lenient")


def _total_threads(server: HoardServer) -> int:
    threads = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["threads"]
    return len(server.worker_pids()) * threads


def _connect(server: HoardServer, source: str, *, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        # Before connect(), so the window offered to the server stays small.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.bind((source, 0))
    sock.settimeout(HANG)
    sock.connect(("127.0.0.1", server.port))
    return sock


class Trickler(threading.Thread):
    """Sends one byte per socket every half second, never blocking."""

    def __init__(self, sockets: list[socket.socket]):
        super().__init__(daemon=True)
        self.sockets = sockets
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(0.5):
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.send(b"a", socket.MSG_DONTWAIT)


def _read_until_closed(sockets: list[socket.socket], timeout: float) -> dict[socket.socket, bytes]:
    """Everything each socket receives until the server ends it (EOF or
    reset); fails if any is still open after `timeout` seconds."""
    received = {sock: b"" for sock in sockets}
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while selector.get_map():
            left = deadline - time.monotonic()
            assert left > 0, f"{len(selector.get_map())} of {len(sockets)} connections still open"
            for key, _ in selector.select(min(left, 1.0)):
                try:
                    data = key.fileobj.recv(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    received[key.fileobj] += data
                else:
                    selector.unregister(key.fileobj)
    return received


def _established_from(server: HoardServer, address: str) -> int:
    """How many of the server's sockets are ESTABLISHED with `address`
    (from /proc/net/tcp: a client that never reads cannot see the server
    drop it until it reads)."""
    local = f"0100007F:{server.port:04X}"
    remote = "".join(f"{int(part):02X}" for part in reversed(address.split(".")))
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2].startswith(remote + ":") and fields[3] == "01":
            count += 1
    return count


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def test_slow_clients_of_every_kind_leave_the_server_answering(hoard, tmp_path):
    server, tenant = hoard
    auth = {"Authorization": f"Bearer {tenant.key}"}
    count = _total_threads(server) + 8
    download = os.urandom(DOWNLOAD_BYTES)
    stored = requests.put(f"{server.url}/v8/artifacts/big01", data=download, headers=auth, timeout=HANG)
    assert stored.status_code == 202, stored.text

    # Headers that never end.
    slow_headers = [_connect(server, SLOW_HEADER_ADDRESS) for _ in range(count)]
    for sock in slow_headers:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: hoard\r\nX-Slow: ")
    # Bodies a few bytes a second, without a key.
    slow_bodies = [_connect(server, SLOW_BODY_ADDRESS) for _ in range(count)]
    for sock in slow_bodies:
        sock.sendall(b"PUT /v8/artifacts/slow01 HTTP/1.1\r\nHost: hoard\r\nContent-Length: 100000000\r\n\r\n")
    trickler = Trickler(slow_headers + slow_bodies)
    trickler.start()
    # Downloads that are never read.
    never_reading = [_connect(server, NEVER_READING_ADDRESS, receive_buffer=4096) for _ in range(count)]
    download_request = (
        f"GET /v8/artifacts/big01 HTTP/1.1\r\nHost: hoard\r\nAuthorization: Bearer {tenant.key}\r\n\r\n"
    )
    for sock in never_reading:
        sock.sendall(download_request.encode())
    # An upload with a valid key that stops a tenth of the way in.
    stalled = _connect(server, STALLED_UPLOAD_ADDRESS)
    stalled.sendall(
        f"PUT /v8/artifacts/stalled01 HTTP/1.1\r\nHost: hoard\r\nAuthorization: Bearer {tenant.key}\r\n"
        "Content-Length: 1000000\r\n\r\n".encode()
        + os.urandom(100_000)
    )

    try:
        # Meanwhile a normal client is served.
        head = requests.head(f"{server.url}/v8/artifacts/big01", headers=auth, timeout=HANG)
        assert head.status_code == 200
        got = requests.get(f"{server.url}/v8/artifacts/big01", headers=auth, timeout=HANG)
        assert got.status_code == 200
        assert got.content == download
        put = requests.put(f"{server.url}/v8/artifacts/normal01", data=b"fine", headers=auth, timeout=HANG)
        assert put.status_code == 202, put.text
        health = requests.get(f"{server.url}/health", timeout=HANG)
        assert health.status_code == 200

        # Then every slow client is cut off.
        _read_until_closed(slow_headers, timeout=120)
        answers = _read_until_closed(slow_bodies, timeout=120)
        # 401 for the missing key, or 429 once the address's anonymous
        # rate limit is spent: either way, before the body.
        assert {_status(answer) for answer in answers.values()} <= {401, 429}
        deadline = time.monotonic() + 180
        while _established_from(server, NEVER_READING_ADDRESS):
            assert time.monotonic() < deadline, "downloads that are never read are still being served"
            time.sleep(0.5)
        for data in _read_until_closed(never_reading, timeout=120).values():
            assert len(data) < DOWNLOAD_BYTES, "a download that was never read was sent whole"
        stalled_answer = _read_until_closed([stalled], timeout=120)[stalled]
    finally:
        trickler.stopped.set()
        for sock in [*slow_headers, *slow_bodies, *never_reading, stalled]:
            sock.close()

    # The stalled upload stored nothing, and left no temporary file.
    assert _status(stalled_answer) == 400
    assert json.loads(stalled_answer.split(b"\r\n\r\n", 1)[1])["code"] == "invalid_request"
    assert (
        requests.head(f"{server.url}/v8/artifacts/stalled01", headers=auth, timeout=HANG).status_code == 404
    )
    assert list((server.var_dir / "storage" / ".tmp").glob("*")) == []


def test_an_early_401_closes_the_connection_without_waiting_for_the_body(hoard):
    server, _ = hoard
    sock = _connect(server, "127.0.0.6")
    sock.sendall(b"PUT /v8/artifacts/early01 HTTP/1.1\r\nHost: hoard\r\nContent-Length: 1000000000\r\n\r\n")
    answer = _read_until_closed([sock], timeout=HANG)[sock]
    sock.close()
    assert _status(answer) == 401
    assert b"Connection: close" in answer


def test_a_head_too_long_to_be_a_clients_is_refused_before_it_gets_a_thread(hoard):
    """A head past 64 KiB, still unfinished, would leave the header deadline
    behind once a thread took it: it is answered 431 and closed instead."""
    server, _ = hoard
    sock = _connect(server, "127.0.0.7")
    filler = b"".join(b"x-filler-%03d: %s\r\n" % (i, b"y" * 7500) for i in range(9))
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: hoard\r\n" + filler)  # no blank line: unfinished
    answer = _read_until_closed([sock], timeout=HANG)[sock]
    sock.close()
    assert _status(answer) == 431
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["status"] == 431


def test_no_response_names_the_server(hoard):
    server, tenant = hoard
    health = requests.get(f"{server.url}/health", timeout=HANG)
    assert "Server" not in health.headers
    missing = requests.get(
        f"{server.url}/v8/artifacts/none01", headers={"Authorization": f"Bearer {tenant.key}"}, timeout=HANG
    )
    assert missing.status_code == 404
    assert "Server" not in missing.headers
    # gunicorn's own errors (here a malformed request line) too.
    sock = _connect(server, "127.0.0.1")
    sock.sendall(b"GET /health HTTP/1.1 trailing\r\nHost: hoard\r\n\r\n")
    refused = _read_until_closed([sock], timeout=HANG)[sock]
    sock.close()
    head = refused.split(b"\r\n\r\n", 1)[0].lower()
    assert _status(refused) == 400
    assert b"content-type: application/json" in head
    assert b"\r\nserver:" not in head


def test_one_address_holds_a_bounded_share_of_threads_and_connections(lenient_hoard):
    server, tenant = lenient_hoard
    auth = {"Authorization": f"Bearer {tenant.key}"}
    workers = len(server.worker_pids())
    download = os.urandom(DOWNLOAD_BYTES)
    assert requests.put(f"{server.url}/v8/artifacts/big02", data=download, headers=auth, timeout=HANG).ok
    # More unread downloads than the server has threads, none ever timing
    # out here: without a per-address thread limit they would hold them all.
    never_reading = [
        _connect(server, "127.0.0.7", receive_buffer=4096) for _ in range(_total_threads(server) + 8)
    ]
    request = f"GET /v8/artifacts/big02 HTTP/1.1\r\nHost: hoard\r\nAuthorization: Bearer {tenant.key}\r\n\r\n"
    # More idle connections than CONNECTION_CAP in every worker: the
    # connections over it are closed at once, not after the header timeout.
    idle = [_connect(server, "127.0.0.8") for _ in range(workers * CONNECTION_CAP + 8)]
    try:
        for sock in never_reading:
            sock.sendall(request.encode())
        got = requests.get(f"{server.url}/v8/artifacts/big02", headers=auth, timeout=HANG)
        assert got.status_code == 200
        assert got.content == download
        assert requests.get(f"{server.url}/health", timeout=HANG).status_code == 200

        with selectors.DefaultSelector() as selector:
            for sock in idle:
                selector.register(sock, selectors.EVENT_READ)
            closed = set()
            deadline = time.monotonic() + HANG
            while len(closed) < 8 and time.monotonic() < deadline:
                for key, _ in selector.select(1.0):
                    selector.unregister(key.fileobj)
                    closed.add(key.fileobj)
        # Readable: the server sends nothing to a connection without a
        # request, so this is its end (EOF or reset).
        assert len(closed) >= 8
    finally:
        for sock in [*never_reading, *idle]:
            sock.close()
