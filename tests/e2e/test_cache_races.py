"""Concurrent PUTs of one cache hash.

Against gunicorn (3 workers) on PostgreSQL, on local storage and on S3
(moto): sixteen clients PUT the same hash at once, each with its own body,
size, duration and tag, while readers GET it. Afterwards exactly one PUT has
won, whole: the body served, its Content-Length, x-artifact-duration and
x-artifact-tag, and what the query reports all belong to that one PUT, and
exactly one object remains in storage for the hash.

Two interleavings are forced rather than hoped for: a re-PUT that another
PUT overtakes (live, over a raw socket), and a commit landing inside a GET
(in-process, where the moment can be chosen).
"""

import hashlib
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

from app.services import cache as cache_service
from app.services import usage
from tests.conftest import REGION
from tests.live_server import HoardServer

WRITERS = 16
READERS = 4
ROUNDS = 5
MiB = 1024 * 1024


@dataclass(frozen=True)
class Put:
    body: bytes
    duration: str
    tag: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


@dataclass
class Deployment:
    hoard: HoardServer
    stored_keys: object  # (prefix) -> sorted keys of the stored objects under it
    leftovers: object  # () -> temporary files or open multipart uploads


def s3_client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


@pytest.fixture(scope="module", params=["local", "s3"])
def deployment(request, new_postgres_database, tmp_path_factory):
    env = {"RATELIMIT_ENABLED": "false"}
    var_dir = tmp_path_factory.mktemp(f"races-{request.param}")
    if request.param == "s3":
        endpoint = request.getfixturevalue("moto_server")
        bucket = f"hoard-races-{secrets.token_hex(4)}"
        client = s3_client(endpoint)
        client.create_bucket(Bucket=bucket)
        env |= {
            "STORAGE_BACKEND": "s3",
            "S3_BUCKET": bucket,
            "S3_ENDPOINT_URL": endpoint,
            "S3_REGION": REGION,
        }

        def stored_keys(prefix: str) -> list[str]:
            listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
            return sorted(item["Key"] for item in listed)

        def leftovers() -> list[str]:
            return [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    else:
        root = var_dir / "storage"

        def stored_keys(prefix: str) -> list[str]:
            base = root / prefix
            return (
                sorted(str(p.relative_to(root)) for p in base.rglob("*") if p.is_file())
                if base.exists()
                else []
            )

        def leftovers() -> list[str]:
            return os.listdir(root / ".tmp") if (root / ".tmp").exists() else []

    with HoardServer(
        var_dir=var_dir, database_url=new_postgres_database(), workers=3, threads=8, env_overrides=env
    ) as hoard:
        yield Deployment(hoard, stored_keys, leftovers)


def make_puts(round_number: int) -> list[Put]:
    """Sixteen bodies of distinct sizes between 1 and 4 MiB, each with its own headers."""
    sizes = [MiB + i * (3 * MiB // WRITERS) + secrets.randbelow(1000) for i in range(WRITERS)]
    return [
        Put(body=os.urandom(size), duration=str(1000 * round_number + i + 1), tag=f"tag-r{round_number}-w{i}")
        for i, size in enumerate(sizes)
    ]


def race(url: str, auth: dict, puts: list[Put], previous: Put | None) -> tuple[list[int], list[str]]:
    """PUT every body at once while readers GET; (PUT statuses, reads no
    version explains: a body no PUT sent, or an error).

    Whether a read's headers match its body, and whether a read can miss an
    entry that exists, are checked in-process below, where the interleavings
    can be forced.
    """
    versions = {put.sha256 for put in [*puts, *([previous] if previous else [])]}
    start = threading.Barrier(len(puts) + READERS)
    statuses = [0] * len(puts)
    strange_reads: list[str] = []
    writing = threading.Event()
    writing.set()

    def write(index: int, put: Put) -> None:
        with requests.Session() as session:
            start.wait(timeout=30)
            headers = {**auth, "x-artifact-duration": put.duration, "x-artifact-tag": put.tag}
            statuses[index] = session.put(url, data=put.body, headers=headers, timeout=60).status_code

    def read() -> None:
        with requests.Session() as session:
            start.wait(timeout=30)
            while writing.is_set():
                response = session.get(url, headers=auth, timeout=60)
                if response.status_code == 404:
                    # Right for a fresh hash before the first PUT commits;
                    # after that, see the forced test at the end of the file.
                    continue
                if (
                    response.status_code != 200
                    or hashlib.sha256(response.content).hexdigest() not in versions
                ):
                    strange_reads.append(f"GET {response.status_code}, {len(response.content)} bytes")

    writers = [threading.Thread(target=write, args=(i, put)) for i, put in enumerate(puts)]
    readers = [threading.Thread(target=read) for _ in range(READERS)]
    for thread in writers + readers:
        thread.start()
    for thread in writers:
        thread.join(timeout=120)
    writing.clear()
    for thread in readers:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in writers + readers), "a client hung"
    return statuses, strange_reads


def settled_keys(stored_keys, prefix: str, count: int, timeout: float = 5.0) -> list[str]:
    """The keys under the prefix once there are `count` of them (a replaced
    version is deleted just after its successor commits), else the last seen."""
    deadline = time.monotonic() + timeout
    while len(keys := stored_keys(prefix)) != count and time.monotonic() < deadline:
        time.sleep(0.1)
    return keys


def assert_won_whole(hoard, auth: dict, artifact_hash: str, puts: list[Put]) -> Put:
    """The one PUT whose body is served, with its length, headers and query figures."""
    got = requests.get(f"{hoard.url}/v8/artifacts/{artifact_hash}", headers=auth, timeout=30)
    assert got.status_code == 200
    winner = {put.sha256: put for put in puts}.get(hashlib.sha256(got.content).hexdigest())
    assert winner is not None, "the body served is none of the PUTs'"
    assert got.headers["Content-Length"] == str(len(winner.body))
    assert got.headers["x-artifact-duration"] == winner.duration
    assert got.headers["x-artifact-tag"] == winner.tag
    query = requests.post(
        f"{hoard.url}/v8/artifacts", json={"hashes": [artifact_hash]}, headers=auth, timeout=10
    )
    assert query.json()[artifact_hash] == {
        "size": len(winner.body),
        "taskDurationMs": int(winner.duration),
        "tag": winner.tag,
    }
    return winner


def new_tenant(hoard) -> tuple[object, dict]:
    tenant = hoard.create_tenant(f"races-{secrets.token_hex(3)}")
    return tenant, {"Authorization": f"Bearer {tenant.key}"}


def test_concurrent_puts_of_one_hash_leave_one_whole_winner(deployment):
    hoard = deployment.hoard
    tenant, auth = new_tenant(hoard)
    # Round 0 races to create the entry; the later rounds race to replace it.
    artifact_hash = secrets.token_hex(8)
    previous = None

    for round_number in range(ROUNDS):
        puts = make_puts(round_number)

        statuses, strange_reads = race(f"{hoard.url}/v8/artifacts/{artifact_hash}", auth, puts, previous)

        where = f"round {round_number}"
        assert statuses == [202] * WRITERS, (where, statuses)
        assert strange_reads == [], (where, strange_reads[:5])
        previous = assert_won_whole(hoard, auth, artifact_hash, puts)
        # Each replaced version is deleted just after its successor commits:
        # one object for the tenant's one entry, and nothing half-written.
        remaining = settled_keys(deployment.stored_keys, f"cache/{tenant.id}/", 1)
        assert [Path(key).parent.name for key in remaining] == [artifact_hash], (where, remaining)
        assert deployment.leftovers() == [], where


# ---------------------------------------------------------------- a forced overlap


def start_put(hoard, auth: dict, artifact_hash: str, put: Put, sent: int) -> socket.socket:
    """Begin a PUT over a raw socket, sending only the first `sent` bytes of its body."""
    head = (
        f"PUT /v8/artifacts/{artifact_hash} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{hoard.port}\r\n"
        f"Authorization: {auth['Authorization']}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {len(put.body)}\r\n"
        f"x-artifact-duration: {put.duration}\r\n"
        f"x-artifact-tag: {put.tag}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", hoard.port), timeout=30)
    sock.sendall(head + put.body[:sent])
    return sock


def finish_put(sock: socket.socket, put: Put, sent: int) -> int:
    with sock:
        sock.sendall(put.body[sent:])
        status_line = sock.recv(65536).split(b"\r\n", 1)[0]
    return int(status_line.split()[1])


def test_a_re_put_overtaken_by_another_is_recorded_whole(deployment):
    """P starts re-PUTting a hash, Q re-PUTs it completely, then P finishes:
    P committed last, so P's body and P's figures must be what is served.

    P's size, duration and tag are the earlier version's (a rebuild whose
    archive differs only in its timestamps) and Q's are not: the values a
    stale copy of the row would leave out of P's UPDATE.
    """
    hoard = deployment.hoard
    tenant, auth = new_tenant(hoard)
    artifact_hash = secrets.token_hex(8)
    url = f"{hoard.url}/v8/artifacts/{artifact_hash}"
    size = 2 * MiB
    first = Put(os.urandom(size), "700", "same-tag")
    p = Put(os.urandom(size), "700", "same-tag")
    q = Put(os.urandom(size // 2), "900", "q-tag")
    headers = {**auth, "x-artifact-duration": first.duration, "x-artifact-tag": first.tag}
    assert requests.put(url, data=first.body, headers=headers, timeout=30).status_code == 202

    sock = start_put(hoard, auth, artifact_hash, p, sent=size // 4)
    time.sleep(0.5)  # P has read the entry and is streaming its body
    headers = {**auth, "x-artifact-duration": q.duration, "x-artifact-tag": q.tag}
    assert requests.put(url, data=q.body, headers=headers, timeout=30).status_code == 202
    assert finish_put(sock, p, sent=size // 4) == 202

    assert assert_won_whole(hoard, auth, artifact_hash, [first, p, q]) == p
    assert len(settled_keys(deployment.stored_keys, f"cache/{tenant.id}/{artifact_hash}/", 1)) == 1


# ---------------------------------------------------------------- a commit inside a GET


def test_a_get_overlapping_a_re_put_sends_one_versions_body_and_headers(app, client, auth, monkeypatch):
    """In-process, so the moment is chosen: the re-PUT commits, and this
    process's usage counters fall due, between the GET opening the body and
    the GET answering. Live, the same happens whenever a worker's once-a-second
    flush lands there."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("needs a database that lets a write commit beside an open read")
    old = Put(b"old body " * 1000, "111", "old-tag")
    new = Put(b"new, longer body " * 1000, "222", "new-tag")
    url = "/v8/artifacts/0123456789abcdef"
    headers = {**auth, "x-artifact-duration": old.duration, "x-artifact-tag": old.tag}
    assert client.put(url, data=old.body, headers=headers).status_code == 202
    opened = cache_service.open_download

    def open_then_race(*args, **kwargs):
        download = opened(*args, **kwargs)
        headers = {**auth, "x-artifact-duration": new.duration, "x-artifact-tag": new.tag}
        assert client.put(url, data=new.body, headers=headers).status_code == 202
        monkeypatch.setattr(usage.pending_counts(app), "last_flush", 0.0)  # the counters fall due now
        return download

    monkeypatch.setattr(cache_service, "open_download", open_then_race)
    got = client.get(url, headers=auth)
    monkeypatch.undo()

    version = {put.sha256: put for put in (old, new)}[hashlib.sha256(got.data).hexdigest()]
    assert (got.headers["x-artifact-tag"], got.headers["x-artifact-duration"]) == (
        version.tag,
        version.duration,
    )
    assert got.headers["Content-Length"] == str(len(version.body))


def test_a_get_that_keeps_losing_to_re_puts_is_still_not_a_miss(app, client, auth, monkeypatch):
    """In-process: before each attempt to open the body, another re-PUT
    commits and deletes the object the GET just read from the row."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("needs a database that lets a write commit beside an open read")
    url = "/v8/artifacts/0123456789abcdef"
    versions = [Put(f"version {i} ".encode() * 500, str(i), f"tag-{i}") for i in range(5)]
    assert client.put(url, data=versions[0].body, headers=auth).status_code == 202
    opened = cache_service.open_download
    upcoming = iter(versions[1:])

    def replaced_first(*args, **kwargs):
        put = next(upcoming, None)
        if put is not None:
            headers = {**auth, "x-artifact-duration": put.duration, "x-artifact-tag": put.tag}
            assert client.put(url, data=put.body, headers=headers).status_code == 202
        return opened(*args, **kwargs)

    monkeypatch.setattr(cache_service, "open_download", replaced_first)
    got = client.get(url, headers=auth)
    monkeypatch.undo()

    assert got.status_code == 200, got.data
    assert hashlib.sha256(got.data).hexdigest() in {put.sha256 for put in versions}
