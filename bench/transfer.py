"""Large artifacts over HTTP: PUT streamed from a file on disk with sendfile(2)
and an explicit Content-Length; GET read into one reused buffer in memory and
hashed once the last byte is in."""

import hashlib
import http.client
import random
import time
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024
BUFFER = MiB


def write_body(path: Path, size: int, seed: int) -> str:
    """`size` pseudo-random bytes into path, with their SHA-256; reused when
    a file of that size with a recorded digest is already there."""
    digest_path = path.with_suffix(path.suffix + ".sha256")
    if path.is_file() and path.stat().st_size == size and digest_path.is_file():
        return digest_path.read_text().strip()
    rng = random.Random(seed)
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            block = rng.randbytes(min(BUFFER, left))
            digest.update(block)
            out.write(block)
            left -= len(block)
    digest_path.write_text(digest.hexdigest())
    return digest.hexdigest()


@dataclass
class Transfer:
    seconds: float
    nbytes: int
    status: int
    sha256: str | None = None
    content_length: str | None = None

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / 1e6 / self.seconds


def put_file(port: int, path: str, token: str, body: Path, *, timeout: float = 900) -> Transfer:
    """PUT the whole file to path (with its query string); time to the answer."""
    size = body.stat().st_size
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest("PUT", path, skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {token}")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(size))
        conn.putheader("x-artifact-duration", "1000")
        conn.endheaders()
        with open(body, "rb") as source:
            # socket.sendfile: sendfile(2), waiting on the (timeout) socket between calls.
            if conn.sock.sendfile(source) != size:
                raise ConnectionError("the body was not sent whole")
        response = conn.getresponse()
        answer = response.read()
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    if response.status // 100 != 2:
        raise RuntimeError(f"PUT {path} answered {response.status}: {answer[:300]!r}")
    return Transfer(seconds=seconds, nbytes=size, status=response.status)


def put_bytes(port: int, path: str, token: str, body: bytes) -> int:
    """PUT a small body in one piece; the status (2xx, else an error)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(
            "PUT",
            path,
            body=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"},
        )
        response = conn.getresponse()
        answer = response.read()
    finally:
        conn.close()
    if response.status // 100 != 2:
        raise RuntimeError(f"PUT {path} answered {response.status}: {answer[:300]!r}")
    return response.status


# One buffer for every GET, grown to the largest body and kept: the client's
# only large allocation, made (and its pages faulted in) once per run.
_landing = bytearray()


def get_into_memory(port: int, path: str, token: str, *, size: int, timeout: float = 900) -> Transfer:
    """GET path into memory and time it to the last byte; then hash it.

    Hashing after the clock stops keeps the client's own SHA-256 (about
    1.3 GB/s on the reference machine, under the loopback's speed) from
    capping what is measured: how fast the server delivers. One spare byte
    notices a body longer than `size`.
    """
    global _landing
    if len(_landing) < size + 1:
        _landing = bytearray(size + 1)
    view = memoryview(_landing)[: size + 1]
    received = 0
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}: {response.read(300)!r}")
        while received <= size and (count := response.readinto(view[received:])):
            received += count
        seconds = time.perf_counter() - started
        content_length = response.getheader("Content-Length")
    finally:
        conn.close()
    return Transfer(
        seconds=seconds,
        nbytes=received,
        status=response.status,
        sha256=hashlib.sha256(view[:received]).hexdigest(),
        content_length=content_length,
    )
