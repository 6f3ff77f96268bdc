"""A gunicorn worker killed with SIGKILL in the middle of an upload, on
PostgreSQL with local storage and with S3 (moto).

One worker serves, so the pid handling the upload is known. Each test stores
an earlier version, starts an upload over a raw socket, waits until the
server has taken in part of the body, kills the worker and waits for the
arbiter's replacement. Then: the interrupted upload created nothing (no row,
no object), the earlier version is intact, what the dead worker left behind
(a temporary file, an open S3 multipart upload) is there, and `flask gc`
removes all of it.

Presigned PUTs are Hoard's own `/v1/uploads/<token>` only with local
storage; with S3 the client PUTs to the store, and killing Hoard changes
nothing, so there the interrupted cache PUT stands for S3's leftovers.
A build tool's PUT (the plain HTTP cache) is killed the same way.
"""

import hashlib
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from tests.live_server import HoardServer

MiB = 1024 * 1024
# Over three 5 MiB parts, so that on S3 a multipart upload is under way.
ANNOUNCED = 24 * MiB
SENT = 12 * MiB
PART_SIZE = 5 * MiB


@dataclass
class Deployment:
    backend: str
    hoard: HoardServer
    engine: sa.Engine
    stored_keys: Callable[[str], list[str]]  # objects under a prefix
    leftovers: Callable[[], list[str]]  # temporary files / open multipart uploads
    in_flight: Callable[[str], int]  # bytes an upload under the prefix has stored so far

    def rows(self, table: str, tenant_id: str) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(
                sa.text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t"), {"t": tenant_id}
            )

    def cache_key(self, tenant_id: str, artifact_hash: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.scalar(
                sa.text("SELECT storage_key FROM cache_entries WHERE tenant_id = :t AND hash = :h"),
                {"t": tenant_id, "h": artifact_hash},
            )


def _local(root: Path):
    tmp = root / ".tmp"

    def stored_keys(prefix: str) -> list[str]:
        base = root / prefix
        return (
            sorted(str(p.relative_to(root)) for p in base.rglob("*") if p.is_file()) if base.exists() else []
        )

    def leftovers() -> list[str]:
        # health checks make and delete their own temporary files here too
        return sorted(name for name in os.listdir(tmp) if name.startswith("put-")) if tmp.exists() else []

    def in_flight(prefix: str) -> int:
        # Temporary files carry no key: any partial upload counts.
        return sum((tmp / name).stat().st_size for name in leftovers())

    return stored_keys, leftovers, in_flight


def _s3(client, bucket: str):
    def stored_keys(prefix: str) -> list[str]:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        return sorted(item["Key"] for item in listed)

    def uploads() -> list[dict]:
        return client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])

    def leftovers() -> list[str]:
        return sorted(upload["Key"] for upload in uploads())

    def in_flight(prefix: str) -> int:
        return sum(
            part["Size"]
            for upload in uploads()
            if upload["Key"].startswith(prefix)
            for part in client.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]).get(
                "Parts", []
            )
        )

    return stored_keys, leftovers, in_flight


@pytest.fixture(scope="module", params=["local", "s3"])
def deployment(request, new_postgres_database, tmp_path_factory):
    var_dir = tmp_path_factory.mktemp(f"crash-{request.param}")
    env = {"RATELIMIT_ENABLED": "false"}
    if request.param == "s3":
        env |= request.getfixturevalue("s3_server_env")("hoard-crash", S3_PART_SIZE=PART_SIZE)
        helpers = _s3(request.getfixturevalue("s3_client"), env["S3_BUCKET"])
    else:
        helpers = _local(var_dir / "storage")
    database_url = new_postgres_database()
    engine = sa.create_engine(database_url)
    with HoardServer(
        var_dir=var_dir, database_url=database_url, workers=1, threads=4, env_overrides=env
    ) as hoard:
        yield Deployment(request.param, hoard, engine, *helpers)
    engine.dispose()


@pytest.fixture
def tenant(deployment):
    tenant = deployment.hoard.create_tenant(f"crash-{secrets.token_hex(3)}")
    tenant.auth = {"Authorization": f"Bearer {tenant.key}"}
    return tenant


# ---------------------------------------------------------------- helpers


def wait_for(predicate, what: str, timeout: float = 15.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def begin_upload(hoard, method: str, path: str, headers: dict[str, str], body_prefix: bytes) -> socket.socket:
    """Send a request's head and the first part of its body; leave it open."""
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: 127.0.0.1:{hoard.port}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    sock = socket.create_connection(("127.0.0.1", hoard.port), timeout=30)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body_prefix)
    return sock


def kill_the_worker(hoard) -> None:
    """SIGKILL the only worker; return once its replacement serves."""
    (pid,) = hoard.worker_pids()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: (pids := hoard.worker_pids()) and pid not in pids, "a new worker", timeout=30)

    def healthy() -> bool:
        try:
            return requests.get(f"{hoard.url}/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_for(healthy, "the new worker to answer /health", timeout=30)


def spooled_bytes(pid: int) -> int:
    """The largest deleted file the process holds open: Werkzeug spools a
    multipart file part to an anonymous temporary file."""
    largest = 0
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
            if target.endswith("(deleted)") or "/#" in target:  # unlinked, or O_TMPFILE
                largest = max(largest, os.stat(fd).st_size)
        except OSError:
            continue  # closed meanwhile
    return largest


def collect_garbage(deployment) -> str:
    """gc, as it runs once the killed writers' heartbeats are long stale
    (a dead writer renews nothing; the clock is moved, not waited for)."""
    with deployment.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE upload_leases SET heartbeat_at = heartbeat_at - interval '2 hours'")
        )
    return deployment.hoard.flask("gc")


def assert_cache_version(deployment, tenant, artifact_hash: str, body: bytes, tag: str) -> None:
    url = f"{deployment.hoard.url}/v8/artifacts/{artifact_hash}"
    got = requests.get(url, headers=tenant.auth, timeout=30)
    assert got.status_code == 200
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(body).digest()
    assert (got.headers["Content-Length"], got.headers["x-artifact-tag"]) == (str(len(body)), tag)


# ---------------------------------------------------------------- /v8 PUT


def test_a_cache_put_killed_midway_leaves_the_previous_version(deployment, tenant):
    hoard = deployment.hoard
    artifact_hash = secrets.token_hex(8)
    first = os.urandom(256 * 1024)
    put = requests.put(
        f"{hoard.url}/v8/artifacts/{artifact_hash}",
        data=first,
        headers={**tenant.auth, "x-artifact-duration": "11", "x-artifact-tag": "first"},
        timeout=30,
    )
    assert put.status_code == 202
    first_key = deployment.cache_key(tenant.id, artifact_hash)
    prefix = f"cache/{tenant.id}/"
    assert deployment.stored_keys(prefix) == [first_key]

    second = os.urandom(ANNOUNCED)
    headers = {
        **tenant.auth,
        "Content-Type": "application/octet-stream",
        "Content-Length": str(len(second)),
        "x-artifact-duration": "22",
        "x-artifact-tag": "second",
    }
    with begin_upload(hoard, "PUT", f"/v8/artifacts/{artifact_hash}", headers, second[:SENT]):
        # On S3, at least two 5 MiB parts are up: a multipart upload is open.
        wait_for(
            lambda: deployment.in_flight(prefix) >= 2 * PART_SIZE, "the server to store part of the body"
        )
        kill_the_worker(hoard)

    assert_cache_version(deployment, tenant, artifact_hash, first, "first")
    query = requests.post(f"{hoard.url}/v8/artifacts", json={"hashes": [artifact_hash]}, headers=tenant.auth)
    assert query.json()[artifact_hash] == {"size": len(first), "taskDurationMs": 11, "tag": "first"}
    assert deployment.rows("cache_entries", tenant.id) == 1
    assert deployment.cache_key(tenant.id, artifact_hash) == first_key
    assert deployment.stored_keys(prefix) == [first_key]
    assert deployment.leftovers() != [], "the killed upload left nothing to collect (was it under way?)"

    report = collect_garbage(deployment)

    assert deployment.leftovers() == [], report
    assert deployment.stored_keys(prefix) == [first_key], report
    assert_cache_version(deployment, tenant, artifact_hash, first, "first")


# ---------------------------------------------------------------- a build tool's PUT


def test_a_build_tool_put_killed_midway_leaves_the_previous_version(deployment, tenant):
    hoard = deployment.hoard
    url = f"/cache/gradle/{secrets.token_hex(16)}"
    first = os.urandom(256 * 1024)
    assert requests.put(hoard.url + url, data=first, headers=tenant.auth, timeout=30).status_code == 200
    prefix = f"cache/{tenant.id}/"
    (first_key,) = deployment.stored_keys(prefix)

    second = os.urandom(ANNOUNCED)
    headers = {**tenant.auth, "Content-Length": str(len(second))}
    with begin_upload(hoard, "PUT", url, headers, second[:SENT]):
        wait_for(
            lambda: deployment.in_flight(prefix) >= 2 * PART_SIZE, "the server to store part of the body"
        )
        kill_the_worker(hoard)

    got = requests.get(hoard.url + url, headers=tenant.auth, timeout=30)
    assert (got.status_code, got.content) == (200, first)
    assert deployment.rows("cache_entries", tenant.id) == 1
    assert deployment.stored_keys(prefix) == [first_key]
    assert deployment.leftovers() != [], "the killed upload left nothing to collect (was it under way?)"

    report = collect_garbage(deployment)

    assert deployment.leftovers() == [], report
    assert deployment.stored_keys(prefix) == [first_key], report
    assert requests.get(hoard.url + url, headers=tenant.auth, timeout=30).content == first


# ---------------------------------------------------------------- /v1 multipart


BOUNDARY = "crash-safety-boundary-5d1e"


def multipart_request(tenant, data: bytes, filename: str) -> tuple[dict, bytes, bytes]:
    """(headers, body before the file's bytes, body after them)."""
    preamble = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    epilogue = f"\r\n--{BOUNDARY}--\r\n".encode()
    headers = {
        **tenant.auth,
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Content-Length": str(len(preamble) + len(data) + len(epilogue)),
    }
    return headers, preamble, epilogue


def test_a_multipart_upload_killed_midway_creates_no_artifact(deployment, tenant):
    hoard = deployment.hoard
    earlier = os.urandom(100 * 1024)
    made = requests.post(
        f"{hoard.url}/v1/artifacts",
        files={"file": ("earlier.bin", earlier, "application/octet-stream")},
        headers=tenant.auth,
        timeout=30,
    )
    assert made.status_code == 201, made.text
    listing = requests.get(f"{hoard.url}/v1/artifacts", headers=tenant.auth, timeout=10).json()
    blobs = deployment.stored_keys(f"blobs/{tenant.id}/")
    assert len(blobs) == 1

    data = os.urandom(ANNOUNCED)
    headers, preamble, _ = multipart_request(tenant, data, "interrupted.bin")
    (pid,) = hoard.worker_pids()
    with begin_upload(hoard, "POST", "/v1/artifacts", headers, preamble + data[:SENT]):
        wait_for(lambda: spooled_bytes(pid) >= SENT // 2, "the server to spool part of the file")
        kill_the_worker(hoard)

    assert requests.get(f"{hoard.url}/v1/artifacts", headers=tenant.auth, timeout=10).json() == listing
    assert deployment.rows("artifacts", tenant.id) == 1
    assert deployment.rows("blobs", tenant.id) == 1
    assert deployment.stored_keys(f"blobs/{tenant.id}/") == blobs

    report = collect_garbage(deployment)

    assert deployment.leftovers() == [], report
    assert deployment.stored_keys(f"blobs/{tenant.id}/") == blobs, report
    url = requests.get(
        f"{hoard.url}/v1/artifacts/{made.json()['artifact_id']}/download-url", headers=tenant.auth, timeout=10
    ).json()["download_url"]
    assert requests.get(url, timeout=30).content == earlier


def test_a_multipart_upload_killed_while_storing_creates_no_artifact(deployment, tenant):
    """Killed after the form was received, while its file is being written
    to storage (a temporary file, or an S3 multipart upload). The moment is
    caught by watching for that leftover; an attempt whose kill came too late
    (the bytes already stored) is tried again."""
    hoard = deployment.hoard
    data = os.urandom(64 * MiB)
    headers, preamble, epilogue = multipart_request(tenant, data, "interrupted.bin")

    for _ in range(3):
        listing = requests.get(f"{hoard.url}/v1/artifacts", headers=tenant.auth, timeout=10).json()
        artifacts = deployment.rows("artifacts", tenant.id)
        blobs = deployment.stored_keys(f"blobs/{tenant.id}/")
        with begin_upload(hoard, "POST", "/v1/artifacts", headers, preamble + data + epilogue):
            wait_for(deployment.leftovers, "the server to start storing the file", interval=0.002)
            kill_the_worker(hoard)
        if deployment.leftovers():
            break  # killed while the bytes were still being stored: before any commit
        collect_garbage(deployment)
    else:
        pytest.fail("the kill never landed while the file was being stored")

    assert requests.get(f"{hoard.url}/v1/artifacts", headers=tenant.auth, timeout=10).json() == listing
    assert deployment.rows("artifacts", tenant.id) == artifacts
    assert deployment.stored_keys(f"blobs/{tenant.id}/") == blobs

    report = collect_garbage(deployment)

    assert deployment.leftovers() == [], report
    assert deployment.stored_keys(f"blobs/{tenant.id}/") == blobs, report


# ---------------------------------------------------------------- presigned PUT


def test_a_presigned_put_killed_midway_leaves_the_reservation_pending(deployment, tenant):
    if deployment.backend == "s3":
        pytest.skip("with S3 the presigned PUT goes to the store: no Hoard worker to kill")
    hoard = deployment.hoard
    data = os.urandom(ANNOUNCED)
    reserved = requests.post(
        f"{hoard.url}/v1/artifacts/upload-url",
        json={"filename": "big.bin", "content_type": "application/octet-stream", "size_bytes": len(data)},
        headers=tenant.auth,
        timeout=10,
    )
    assert reserved.status_code == 201
    ticket = reserved.json()
    artifact_url = f"{hoard.url}/v1/artifacts/{ticket['artifact_id']}"
    path = "/" + ticket["upload_url"].split("/", 3)[3]
    assert path.startswith("/v1/uploads/")
    headers = {**ticket["upload_headers"], "Content-Length": str(len(data))}

    with begin_upload(hoard, "PUT", path, headers, data[:SENT]):
        wait_for(lambda: deployment.in_flight("") >= SENT // 2, "the server to store part of the body")
        kill_the_worker(hoard)

    assert requests.get(artifact_url, headers=tenant.auth, timeout=10).json()["status"] == "pending"
    complete = requests.post(f"{artifact_url}/complete", headers=tenant.auth, timeout=10)
    assert (complete.status_code, complete.json()["error"]["code"]) == (400, "upload_not_found")
    assert deployment.stored_keys(f"blobs/{tenant.id}/") == []
    assert deployment.leftovers() != []

    report = collect_garbage(deployment)

    assert deployment.leftovers() == [], report
    # The reservation outlives gc until its URL expires, and the URL, never
    # used to the end, still takes the bytes.
    assert requests.get(artifact_url, headers=tenant.auth, timeout=10).json()["status"] == "pending"
    retry = requests.put(ticket["upload_url"], data=data, headers=ticket["upload_headers"], timeout=60)
    assert retry.status_code == 200, retry.text
    done = requests.post(f"{artifact_url}/complete", headers=tenant.auth, timeout=10).json()
    assert (done["status"], done["content_hash"]) == ("active", hashlib.sha256(data).hexdigest())
