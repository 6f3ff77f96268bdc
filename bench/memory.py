"""PUT then GET one large build-cache artifact through gunicorn and report the
worker's peak memory.

    .venv/bin/python bench/memory.py [--size-mib 1024] [--limit-mb 150] [--database-url URL]
                                     [--route v8|gradle|bazel|nx]

Hoard runs under real gunicorn (gunicorn.conf.py, one worker, so the worker's
RSS is unambiguous) on a throwaway var dir. The client generates the body and
hashes both directions on the fly, so it never holds the artifact either. A
thread reads the worker's VmRSS from /proc every 50 ms; VmHWM (the kernel's
own high-water mark, reset before each phase where /proc allows it) catches
peaks between samples. Exits 1 when any phase peaks over the limit.
"""

import argparse
import hashlib
import http.client
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.live_server import HoardServer, free_port  # noqa: E402

MiB = 1024 * 1024
MB = 1000 * 1000
CHUNK = MiB
POOL_CHUNKS = 8  # distinct 1 MiB blocks the body cycles through
ARTIFACT_HASH = "bench-memory-0123456789abcdef"
# Where the artifact goes: turbo's /v8, or a build tool's cache (the Bazel
# CAS key is the body's SHA-256, filled in once the body is known).
ROUTES = {
    "v8": (f"/v8/artifacts/{ARTIFACT_HASH}", 202),
    "gradle": (f"/cache/gradle/{ARTIFACT_HASH}", 200),
    "bazel": ("/cache/bazel/cas/{sha256}", 200),
    "nx": ("/v1/cache/90817263544536271", 200),
}


def read_status_kib(pid: int, field: str) -> int | None:
    """A `VmRSS:`-style line of /proc/<pid>/status, in KiB."""
    with suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


@dataclass
class Phase:
    name: str
    peak_rss: int = 0  # bytes, highest sample
    hwm: int | None = None  # bytes, VmHWM at the end of the phase
    hwm_reset: bool = False
    seconds: float | None = None
    nbytes: int | None = None

    @property
    def peak(self) -> int:
        return max(self.peak_rss, self.hwm or 0) if self.hwm_reset else self.peak_rss


class RssSampler(threading.Thread):
    """Samples one process's VmRSS every `interval` seconds into the current phase."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.phases: list[Phase] = []
        self._current: Phase | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self._sample()
            self._halt.wait(self.interval)

    def _sample(self) -> None:
        rss = read_status_kib(self.pid, "VmRSS")
        phase = self._current
        if rss is not None and phase is not None:
            phase.peak_rss = max(phase.peak_rss, rss * 1024)

    def _reset_hwm(self) -> bool:
        # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    @contextmanager
    def phase(self, name: str, nbytes: int | None = None):
        phase = Phase(name, hwm_reset=self._reset_hwm(), nbytes=nbytes)
        self.phases.append(phase)
        self._current = phase
        self._sample()
        started = time.perf_counter()
        try:
            yield phase
        finally:
            phase.seconds = time.perf_counter() - started
            self._sample()
            hwm = read_status_kib(self.pid, "VmHWM")
            phase.hwm = hwm * 1024 if hwm is not None else None
            self._current = None

    def stop(self) -> None:
        self._halt.set()
        self.join()


def body_chunks(size: int, seed: int = 1):
    """`size` bytes cycling through POOL_CHUNKS pseudo-random 1 MiB blocks."""
    rng = random.Random(seed)
    pool = [rng.randbytes(CHUNK) for _ in range(POOL_CHUNKS)]
    sent = 0
    index = 0
    while sent < size:
        chunk = pool[index % POOL_CHUNKS][: size - sent]
        sent += len(chunk)
        index += 1
        yield chunk


def body_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for chunk in body_chunks(size):
        digest.update(chunk)
    return digest.hexdigest()


def put_artifact(port: int, key: str, size: int, route: str = "v8") -> str:
    """Stream `size` bytes to the route's URL; return their SHA-256."""
    path, expected = ROUTES[route]
    if "{sha256}" in path:
        path = path.format(sha256=body_sha256(size))
    digest = hashlib.sha256()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.putrequest("PUT", path)
        conn.putheader("Authorization", f"Bearer {key}")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(size))
        conn.putheader("x-artifact-duration", "1234")
        conn.endheaders()
        with suppress(BrokenPipeError, ConnectionResetError):  # an early refusal: read it below
            for chunk in body_chunks(size):
                digest.update(chunk)
                conn.send(chunk)
        response = conn.getresponse()
        answer = response.read()
        if response.status != expected:
            raise SystemExit(f"PUT answered {response.status}: {answer[:500]!r}")
    finally:
        conn.close()
    return digest.hexdigest()


def get_artifact(port: int, key: str, route: str = "v8", size: int = 0) -> tuple[int, str, dict[str, str]]:
    """Stream the artifact back; return its size, SHA-256 and headers."""
    path, _ = ROUTES[route]
    if "{sha256}" in path:
        path = path.format(sha256=body_sha256(size))
    digest = hashlib.sha256()
    received = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {key}"})
        response = conn.getresponse()
        if response.status != 200:
            raise SystemExit(f"GET answered {response.status}: {response.read(500)!r}")
        while chunk := response.read(CHUNK):
            digest.update(chunk)
            received += len(chunk)
        headers = {name.lower(): value for name, value in response.getheaders()}
    finally:
        conn.close()
    return received, digest.hexdigest(), headers


def print_table(phases: list[Phase], limit: int) -> None:
    def mb(value: int | None) -> str:
        return "-" if value is None else f"{value / MB:.1f}"

    rows = [("phase", "peak RSS MB", "VmHWM MB", "seconds", "MB/s")]
    for phase in phases:
        rate = f"{phase.nbytes / MB / phase.seconds:.0f}" if phase.nbytes and phase.seconds else "-"
        rows.append(
            (
                phase.name,
                mb(phase.peak_rss),
                mb(phase.hwm) if phase.hwm_reset else "n/a",
                f"{phase.seconds:.2f}",
                rate,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rows.insert(1, tuple("-" * w for w in widths))
    for name, *figures in rows:
        print(
            "  ".join(
                [name.ljust(widths[0]), *(f.rjust(w) for f, w in zip(figures, widths[1:], strict=True))]
            )
        )
    print(f"limit: {limit / MB:.0f} MB per phase (MB = 10^6 bytes; RSS sampled every 50 ms)")


def start_moto() -> tuple[subprocess.Popen, dict]:
    """A moto S3 server in its own process, a bucket, and the env pointing Hoard at it."""
    import boto3
    from botocore.config import Config

    port = free_port()
    credentials = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **credentials},
    )
    url = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    for _ in range(100):
        try:
            client.create_bucket(Bucket="hoard-bench")
            break
        except Exception:
            time.sleep(0.1)
    env = {"STORAGE_BACKEND": "s3", "S3_BUCKET": "hoard-bench", "S3_ENDPOINT_URL": url, **credentials}
    return process, env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="artifact size in MiB (default 1024)")
    parser.add_argument("--limit-mb", type=float, default=150, help="peak RSS allowed, MB (default 150)")
    parser.add_argument("--database-url", help="default: SQLite in the throwaway var dir")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads in the one worker")
    parser.add_argument("--keep", action="store_true", help="keep the var dir (storage, logs)")
    parser.add_argument(
        "--storage",
        choices=("local", "s3"),
        default="local",
        help="s3: a moto server in its own process, with Hoard's multipart upload and streamed GET",
    )
    parser.add_argument(
        "--route",
        choices=sorted(ROUTES),
        default="v8",
        help="turbo's /v8 (default), or a build tool's cache: Gradle's key, Bazel's CAS (hashed), Nx",
    )
    args = parser.parse_args()
    size = args.size_mib * MiB
    limit = int(args.limit_mb * MB)

    var_dir = Path(tempfile.mkdtemp(prefix="hoard-bench-memory-"))
    env = {"CACHE_MAX_ARTIFACT_BYTES": max(size, 2 * 1024**3), "LOG_LEVEL": "WARNING"}
    moto = None
    if args.storage == "s3":
        moto, s3_env = start_moto()
        env.update(s3_env)
    server = HoardServer(
        var_dir=var_dir,
        database_url=args.database_url or f"sqlite:///{var_dir / 'hoard.db'}",
        workers=1,
        threads=args.threads,
        env_overrides=env,
    )
    try:
        with server:
            print(f"storage: {args.storage}; route: {args.route}")
            tenant = server.create_tenant("bench")
            (worker,) = server.worker_pids()
            print(f"gunicorn worker pid {worker}, artifact {args.size_mib} MiB, var dir {var_dir}")
            sampler = RssSampler(worker)
            sampler.start()
            try:
                with sampler.phase("before"):
                    # Warm the code paths, so the baseline includes what a
                    # first request imports and caches.
                    # (v8 and gradle: the real PUT replaces this entry; Nx never
                    # replaces, so its warm-up uses the route it does not measure.)
                    warm = "v8" if args.route == "nx" else args.route
                    put_artifact(server.port, tenant.key, 64 * 1024, warm)
                    get_artifact(server.port, tenant.key, warm, 64 * 1024)
                    time.sleep(0.5)
                with sampler.phase("PUT", nbytes=size):
                    sent_sha = put_artifact(server.port, tenant.key, size, args.route)
                with sampler.phase("GET", nbytes=size):
                    received, got_sha, headers = get_artifact(server.port, tenant.key, args.route, size)
            finally:
                sampler.stop()
    finally:
        if moto is not None:
            moto.terminate()
        if args.keep:
            print(f"kept {var_dir}")
        else:
            shutil.rmtree(var_dir, ignore_errors=True)

    print()
    print_table(sampler.phases, limit)
    failures = []
    if received != size or got_sha != sent_sha:
        failures.append(f"GET returned {received} bytes sha256 {got_sha}; PUT sent {size} bytes {sent_sha}")
    if headers.get("content-length") != str(size):
        failures.append(f"GET Content-Length {headers.get('content-length')!r}, expected {size}")
    for phase in sampler.phases:
        if phase.peak > limit:
            failures.append(f"{phase.name}: worker peaked at {phase.peak / MB:.1f} MB > {limit / MB:.0f} MB")
    print(f"sha256 {sent_sha} {'matches' if got_sha == sent_sha else 'DIFFERS'}")
    for failure in failures:
        print("FAIL:", failure)
    print("OK" if not failures else "FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
