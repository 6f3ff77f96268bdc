"""`make bench`: Hoard against turborepo-remote-cache, measured in alternation
on the same machine, in the same run as the machine's own limits.

    .venv/bin/python bench/run.py [--quick] [--skip-s3] [--reps N] [--duration S]
                                  [--workers N] [--keep] [--work-dir DIR]

Hoard runs under gunicorn with gunicorn.conf.py and its production settings
(PostgreSQL and Redis when reachable, sendfile downloads, rate limits raised
out of the way); the peer runs under node; each on its own loopback port.
Pass 1 stores on local disk, pass 2 in S3 (one moto server, a bucket each).
Every phase is repeated and the servers take turns within each repetition;
the table shows medians and Hoard/peer, and for small requests also Hoard
against the floor, an empty Flask app under the same gunicorn settings. JSON
with every repetition goes to bench/results/. See bench/README.md for what
each figure means.
"""

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import loadgen, peer, report, sockets, transfer  # noqa: E402
from bench import machine_limits as limits  # noqa: E402
from bench.floor import FloorServer  # noqa: E402
from bench.proctree import PeakSampler, cpu_by_pid, increase, rss_bytes, tree, tree_cpu  # noqa: E402
from tests.e2e import turbo  # noqa: E402
from tests.live_server import BIN, HoardServer, free_port, start_process, stop_process  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB
MB = 1e6
POSTGRES_PORT = 5432
REDIS_PORT = 6379
POSTGRES_ADMIN_URL = f"postgresql://postgres@127.0.0.1:{POSTGRES_PORT}/postgres"
BENCH_DATABASE = "hoard_bench"
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/15"
RAISED_LIMIT = 1_000_000  # requests per second: far above anything this machine serves
SMALL_SIZE = 1024
SMALL_ARTIFACTS = 64  # distinct 1 KiB artifacts the small-request phase cycles through
AWS_REGION = "us-east-1"
RESULTS_DIR = ROOT / "bench" / "results"
NULL_RESPONDER = ROOT / "bench" / "null_responder.js"


@dataclass
class Plan:
    sizes: list[int]
    reps: int
    s3_large_reps: int  # for 1 GiB and more through moto, which is slow
    duration: float  # seconds of each small-request run
    concurrencies: list[int]
    limit_bytes: int
    passes: list[str]
    loadgen_processes: int
    workers: int
    threads: int

    @classmethod
    def from_args(cls, args) -> "Plan":
        cpus = os.cpu_count() or 1
        reps = 1 if args.quick else args.reps
        if args.passes:
            passes = args.passes.split(",")
        else:
            passes = ["local"] if args.quick or args.skip_s3 else ["local", "s3"]
        return cls(
            sizes=[MiB, 64 * MiB] if args.quick else [MiB, 64 * MiB, GiB],
            reps=reps,
            s3_large_reps=min(reps, 2),
            duration=args.duration or (2.0 if args.quick else 5.0),
            concurrencies=[1, 8, 32],
            limit_bytes=256 * MiB if args.quick else GiB,
            passes=passes,
            loadgen_processes=args.loadgen_processes or cpus,
            # What gunicorn.conf.py would pick: WEB_CONCURRENCY, else 2 * CPUs + 1.
            workers=args.workers or int(os.environ.get("WEB_CONCURRENCY", cpus * 2 + 1)),
            threads=args.threads,
        )


def size_label(size: int) -> str:
    return f"{size // GiB} GiB" if size >= GiB else f"{size // MiB} MiB" if size >= MiB else f"{size} B"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@dataclass
class Target:
    """One server as the clients see it: where, whose token, which team."""

    name: str
    port: int
    token: str
    team: str
    pid: int
    # Where its CPU time goes: its own process tree, and the services it uses.
    cpu_probes: dict[str, Callable[[], dict[int, float]]] = field(default_factory=dict)
    # What it asks of those services: round trips, commands.
    count_probes: dict[str, Callable[[], dict]] = field(default_factory=dict)
    # Where an artifact lives: turbo's /v8 route, or a build tool's key under
    # the plain HTTP cache (which turbo does not speak).
    route: str = "/v8/artifacts/{hash}?slug={team}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def speaks_turbo(self) -> bool:
        return self.route.startswith("/v8/")

    def path(self, artifact_hash: str) -> str:
        return self.route.format(hash=artifact_hash, team=self.team)


def in_turns(targets: list[Target], rep: int) -> list[Target]:
    """Who goes first alternates with each repetition."""
    return targets if rep % 2 == 0 else targets[::-1]


def median(values) -> float:
    return statistics.median(list(values))


# ---------------------------------------------------------------- services


@contextmanager
def bench_database(use_postgres: bool, var_dir: Path, name: str = BENCH_DATABASE):
    """A fresh PostgreSQL database `name` dropped afterwards, else SQLite in var_dir."""
    if not use_postgres:
        yield f"sqlite:///{var_dir / 'hoard.db'}"
        return
    import psycopg

    def admin(statement: str) -> None:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(statement)

    admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin(f"CREATE DATABASE {name}")
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def postgres_backends_cpu() -> dict[int, float]:
    """CPU time used so far by each PostgreSQL backend serving the bench database."""
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        pids = [
            row[0]
            for row in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (BENCH_DATABASE,))
        ]
    return cpu_by_pid(pids)


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


class RedisCommands:
    """Count probe: commands the bench's Redis server has processed, from any
    client and including those a Lua script runs, less this probe's INFO calls."""

    def __init__(self):
        import redis

        self.client = redis.Redis.from_url(REDIS_URL)
        self.calls = 0

    def __call__(self) -> dict[str, int]:
        self.calls += 1
        return {"redis": self.client.info("stats")["total_commands_processed"] - self.calls}


@contextmanager
def moto_server(log_dir: Path, buckets: list[str]):
    """moto in a process of its own (not sharing the bench's GIL); yields its URL."""
    import boto3

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process, log = start_process(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=None,
        log_path=log_dir / "moto.log",
        ready_url=url,
    )
    try:
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name=AWS_REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        yield url, process.pid
    finally:
        stop_process(process, log)


def hoard_env(*, redis_up: bool, s3_url: str | None, empty_file: Path) -> dict:
    env = {
        "LOG_LEVEL": "INFO",
        "DOWNLOAD_MODE": "sendfile",
        "RATE_LIMIT_BURST": RAISED_LIMIT,
        "RATE_LIMIT_SUSTAINED": RAISED_LIMIT,
        "RATELIMIT_STORAGE_URI": REDIS_URL if redis_up else "memory://",
    }
    if s3_url:
        env.update(
            STORAGE_BACKEND="s3",
            S3_BUCKET="hoard-bench",
            S3_ENDPOINT_URL=s3_url,
            S3_REGION=AWS_REGION,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_CONFIG_FILE=str(empty_file),
            AWS_SHARED_CREDENTIALS_FILE=str(empty_file),
        )
    return env


def peer_env(s3_url: str | None) -> dict:
    if not s3_url:
        return {}
    return {
        "STORAGE_PROVIDER": "s3",
        "STORAGE_PATH": "peer-bench",
        "S3_ACCESS_KEY": "testing",
        "S3_SECRET_KEY": "testing",
        "S3_REGION": AWS_REGION,
        "S3_ENDPOINT": s3_url,
    }


def smoke_check(target: Target) -> None:
    """PUT, GET, HEAD of one artifact and a 404 for a missing one, before any timing."""
    body = os.urandom(4096)
    artifact = f"smoke-{secrets.token_hex(8)}"
    headers = {"Authorization": f"Bearer {target.token}"}
    transfer.put_bytes(target.port, target.path(artifact), target.token, body)
    got = requests.get(target.url + target.path(artifact), headers=headers, timeout=30)
    head = requests.head(target.url + target.path(artifact), headers=headers, timeout=30)
    missing = requests.get(target.url + target.path(f"missing-{artifact}"), headers=headers, timeout=30)
    problems = []
    if got.status_code != 200 or got.content != body:
        problems.append(f"GET answered {got.status_code} with {len(got.content)} bytes")
    if head.status_code != 200:
        problems.append(f"HEAD answered {head.status_code}")
    if missing.status_code != 404:
        problems.append(f"GET of a missing artifact answered {missing.status_code}")
    if problems:
        raise RuntimeError(f"{target.name} fails the smoke check: {'; '.join(problems)}")


# ---------------------------------------------------------------- machine limits


def measure_limits(plan: Plan, work: Path, body: Path, runs: dict[str, list[float]]) -> dict:
    """Adds plan.reps samples of each limit to runs; the medians of all samples so far."""
    log(f"machine limits: fsync'd disk write and loopback copy of {size_label(plan.limit_bytes)}")
    for _ in range(plan.reps):
        runs.setdefault("disk_write_mb_s", []).append(limits.disk_write_mb_s(work, plan.limit_bytes))
    loop = limits.loopback_mb_s(body, plan.reps)
    runs.setdefault("loopback_mb_s", []).extend(loop["plain"])
    runs.setdefault("loopback_sha256_mb_s", []).extend(loop["sha256"])
    return {name: median(samples) for name, samples in runs.items()} | {
        "runs": runs,
        "bytes": plan.limit_bytes,
    }


def small_requests(target: Target, method: str, hashes: list[str]) -> list[bytes]:
    return [
        (
            f"{method} {target.path(h)} HTTP/1.1\r\nHost: 127.0.0.1:{target.port}\r\n"
            f"Authorization: Bearer {target.token}\r\nUser-Agent: hoard-bench\r\n\r\n"
        ).encode()
        for h in hashes
    ]


def calibrate_loadgen(plan: Plan, generator: loadgen.LoadGenerator) -> dict:
    """The generator against node's canned responder: what it can drive at most."""
    log("load generator capacity against a canned node responder")
    process = subprocess.Popen(
        ["node", str(NULL_RESPONDER)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        port = int(process.stdout.readline())
        target = Target("null", port, "x", "x", process.pid)
        probes = {"server": partial(tree_cpu, process.pid)}
        hashes = [f"{i:016x}" for i in range(SMALL_ARTIFACTS)]
        results = {}
        for method in ("HEAD", "GET"):
            for concurrency in plan.concurrencies:
                runs = [
                    generator.run(
                        port,
                        small_requests(target, method, hashes),
                        head=method == "HEAD",
                        concurrency=concurrency,
                        duration=plan.duration,
                        cpu_probes=probes,
                    )
                    for _ in range(plan.reps)
                ]
                summary = loadgen.median_result(runs)
                summary["runs"] = [r.as_dict() for r in runs]
                results[f"{method} c={concurrency}"] = summary
        return results
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait()


# ---------------------------------------------------------------- phases


def warm_up(targets, generator, plan, small_hashes, bodies) -> None:
    """Touch every worker and code path before anything is timed."""
    for target in targets:
        for _ in range(8):
            artifact = f"warm-{secrets.token_hex(6)}"
            transfer.put_file(target.port, target.path(artifact), target.token, bodies[MiB][0])
            transfer.get_into_memory(target.port, target.path(artifact), target.token, size=MiB)
        for method in ("HEAD", "GET"):
            generator.run(
                target.port,
                small_requests(target, method, small_hashes),
                head=method == "HEAD",
                concurrency=max(plan.concurrencies),
                duration=1.0,
            )


def measure_transfers(targets, plan, work, bodies, sampler, *, s3: bool) -> dict:
    """PUT then GET of each size, in turns; for large sizes each repetition also
    samples the machine's limits at that size, so each figure has its ceiling
    measured moments apart from it."""
    results: dict[str, dict] = {}
    for size in plan.sizes:
        label = size_label(size)
        body, digest = bodies[size]
        reps = plan.s3_large_reps if s3 and size >= GiB else plan.reps
        runs: dict[str, list[dict]] = {t.name: [] for t in targets}
        limit_runs: dict[str, list[float]] = {}
        log(f"PUT/GET {label} x{reps}")
        with sampler.phase(f"transfer {label}"):
            for rep in range(reps):
                if size >= report.LARGE:
                    loop = limits.loopback_mb_s(body, 1)
                    for name, value in (
                        ("disk_write_mb_s", limits.disk_write_mb_s(work, size)),
                        ("loopback_mb_s", loop["plain"][0]),
                        ("loopback_sha256_mb_s", loop["sha256"][0]),
                    ):
                        limit_runs.setdefault(name, []).append(value)
                for target in in_turns(targets, rep):
                    runs[target.name].append(transfer_once(target, body, digest, label, rep))
        results[label] = {"bytes": size} | {
            name: {
                "put_mb_s": median(r["put_mb_s"] for r in rows),
                "get_mb_s": median(r["get_mb_s"] for r in rows),
                "put_server_cpu_s": median(r["put_server_cpu_s"] for r in rows),
                "get_server_cpu_s": median(r["get_server_cpu_s"] for r in rows),
                "runs": rows,
            }
            for name, rows in runs.items()
        }
        if limit_runs:
            results[label]["limits"] = {name: median(v) for name, v in limit_runs.items()} | {
                "runs": limit_runs
            }
    return results


def transfer_once(target: Target, body: Path, digest: str, label: str, rep: int) -> dict:
    """One PUT of the body and one GET of it back, verified; rates and server CPU."""
    size = body.stat().st_size
    artifact = f"large-{label.replace(' ', '')}-{rep}-{secrets.token_hex(4)}"
    cpu_before = tree_cpu(target.pid)
    put = transfer.put_file(target.port, target.path(artifact), target.token, body)
    cpu_between = tree_cpu(target.pid)
    get = transfer.get_into_memory(target.port, target.path(artifact), target.token, size=size)
    cpu_after = tree_cpu(target.pid)
    if get.nbytes != size or get.sha256 != digest:
        raise RuntimeError(
            f"{target.name} returned {get.nbytes} bytes, sha256 {get.sha256}; "
            f"sent {size} bytes, sha256 {digest}"
        )
    log(f"  {target.name:5} {label}: PUT {put.mb_per_s:7.0f} MB/s  GET {get.mb_per_s:7.0f} MB/s  sha256 ok")
    return {
        "put_mb_s": put.mb_per_s,
        "get_mb_s": get.mb_per_s,
        "put_seconds": put.seconds,
        "get_seconds": get.seconds,
        "put_server_cpu_s": increase(cpu_before, cpu_between),
        "get_server_cpu_s": increase(cpu_between, cpu_after),
        "put_status": put.status,
        "get_content_length": get.content_length,
        "sha256_ok": True,
        "loadavg_1m": os.getloadavg()[0],
    }


def measure_small(targets, plan, generator, small_hashes, sampler) -> dict:
    results: dict[str, dict] = {}
    with sampler.phase("small requests"):
        for method in ("HEAD", "GET"):
            for concurrency in plan.concurrencies:
                key = f"{method} c={concurrency}"
                runs: dict[str, list] = {t.name: [] for t in targets}
                for rep in range(plan.reps):
                    for target in in_turns(targets, rep):
                        result = generator.run(
                            target.port,
                            small_requests(target, method, small_hashes),
                            head=method == "HEAD",
                            concurrency=concurrency,
                            duration=plan.duration,
                            cpu_probes=target.cpu_probes,
                            count_probes=target.count_probes,
                        )
                        runs[target.name].append(result)
                results[key] = {}
                for name, rows in runs.items():
                    summary = loadgen.median_result(rows)
                    summary["runs"] = [r.as_dict() for r in rows]
                    results[key][name] = summary
                line = "  ".join(
                    f"{name} {results[key][name]['requests_per_s']:7.0f} req/s "
                    f"p99 {results[key][name]['p99_ms']:6.2f} ms"
                    + (f" ({results[key][name]['errors']} errors)" if results[key][name]["errors"] else "")
                    for name in runs
                )
                log(f"  {key:10} {line}")
    return results


def measure_turbo(targets, plan, hoard_server, repo, binary, sampler, pass_name) -> dict:
    targets = [target for target in targets if target.speaks_turbo]
    runs: dict[str, list[dict]] = {t.name: [] for t in targets}
    with sampler.phase("turbo"):
        for rep in range(plan.reps):
            for target in in_turns(targets, rep):
                # A namespace of its own, so the cold build misses every task.
                if target.name == "hoard":
                    tenant = hoard_server.create_tenant(f"turbo-{pass_name}-{rep}-{secrets.token_hex(3)}")
                    token, team = tenant.key, tenant.slug
                else:
                    token, team = target.token, f"turbo-{pass_name}-{rep}-{secrets.token_hex(3)}"
                figures = {}
                outputs = None
                for kind, expected in (("cold", {("MISS", None)}), ("warm", {("HIT", "REMOTE")})):
                    turbo.wipe(repo)
                    started = time.perf_counter()
                    run = turbo.run_build(binary, repo, api=target.url, token=token, team=team)
                    figures[f"{kind}_s"] = time.perf_counter() - started
                    figures["loadavg_1m"] = os.getloadavg()[0]
                    sources = set(run.cache_sources().values())
                    if run.returncode != 0 or sources != expected:
                        raise RuntimeError(
                            f"{target.name} {kind} turbo build: exit {run.returncode}, caches {sources}, "
                            f"expected {expected}:\n{run.output[-2000:]}"
                        )
                    if outputs is None:
                        outputs = turbo.hash_outputs(repo)
                    elif turbo.hash_outputs(repo) != outputs:
                        raise RuntimeError(f"{target.name} warm build restored different outputs")
                runs[target.name].append(figures)
                log(f"  {target.name:5} turbo cold {figures['cold_s']:.2f} s  warm {figures['warm_s']:.2f} s")
    return {
        name: {
            "cold_s": median(r["cold_s"] for r in rows),
            "warm_s": median(r["warm_s"] for r in rows),
            "runs": rows,
        }
        for name, rows in runs.items()
    }


def run_pass(pass_name, plan, work, bodies, generator, services, repo, binary) -> dict:
    s3 = pass_name == "s3"
    pass_dir = work / pass_name
    pass_dir.mkdir()
    empty_file = pass_dir / "empty"
    empty_file.write_text("")
    log(f"=== pass: {pass_name} storage ===")
    with ExitStack() as stack:
        s3_url, moto_pid = (
            stack.enter_context(moto_server(pass_dir, ["hoard-bench", "peer-bench"])) if s3 else (None, None)
        )
        if services["redis"]:
            flush_redis()
        database_url = stack.enter_context(bench_database(services["postgres"], pass_dir / "hoard"))
        hoard_server = HoardServer(
            var_dir=pass_dir / "hoard",
            database_url=database_url,
            workers=plan.workers,
            threads=plan.threads,
            env_overrides=hoard_env(redis_up=services["redis"], s3_url=s3_url, empty_file=empty_file),
        )
        stack.enter_context(hoard_server)
        tenant = hoard_server.create_tenant(f"bench-{pass_name}")
        peer_token = secrets.token_hex(16)
        peer_server = stack.enter_context(
            peer.PeerServer(
                entry_point=services["peer_entry"],
                var_dir=pass_dir / "peer",
                token=peer_token,
                env_overrides=peer_env(s3_url),
            )
        )
        targets = [
            Target("hoard", hoard_server.port, tenant.key, tenant.slug, hoard_server.process.pid),
            Target("peer", peer_server.port, peer_token, "bench", peer_server.process.pid),
            # The same server's plain HTTP cache, as Gradle (or ccache, Bazel...) uses it.
            Target(
                report.HTTP_CACHE,
                hoard_server.port,
                tenant.key,
                tenant.slug,
                hoard_server.process.pid,
                route="/cache/gradle/{hash}",
            ),
        ]
        for target in targets:
            target.cpu_probes["server"] = partial(tree_cpu, target.pid)
            if moto_pid:
                target.cpu_probes["moto"] = partial(tree_cpu, moto_pid)
        for hoard in (targets[0], targets[2]):
            segments = partial(sockets.segments_sent, hoard.pid)
            if services["postgres"]:
                hoard.cpu_probes["postgres"] = postgres_backends_cpu
                hoard.count_probes["SQL round trips"] = partial(segments, POSTGRES_PORT)
            if services["redis"]:
                hoard.count_probes["Redis round trips"] = partial(segments, REDIS_PORT)
                hoard.count_probes["Redis commands"] = RedisCommands()
        for target in targets:
            smoke_check(target)
        log(f"hoard on :{hoard_server.port} (pid {hoard_server.process.pid}), peer on :{peer_server.port}")
        roots = {t.name: t.pid for t in targets}
        if moto_pid:
            roots["moto"] = moto_pid
        sampler = PeakSampler(roots)
        sampler.start()
        stack.callback(sampler.stop)

        small_hashes = [f"small{i:03d}{secrets.token_hex(5)}" for i in range(SMALL_ARTIFACTS)]
        for target in targets:
            for artifact in small_hashes:
                transfer.put_bytes(target.port, target.path(artifact), target.token, os.urandom(SMALL_SIZE))
        log("warm-up")
        warm_up(targets, generator, plan, small_hashes, bodies)
        idle = {name: rss_bytes(tree(pid)) for name, pid in roots.items()}

        result = {"idle_rss": idle}
        result["transfers"] = measure_transfers(targets, plan, work, bodies, sampler, s3=s3)
        log(f"HEAD/GET {SMALL_SIZE} B: {plan.duration:.0f} s per run, x{plan.reps}")
        # The stack's ceiling does not depend on where Hoard stores, but it is
        # measured in every pass so that it takes turns with the others.
        floor = stack.enter_context(FloorServer(pass_dir, workers=plan.workers, threads=plan.threads))
        floor_target = Target("floor", floor.port, "-", "-", floor.process.pid)
        floor_target.cpu_probes["server"] = partial(tree_cpu, floor.process.pid)
        result["small"] = measure_small([*targets, floor_target], plan, generator, small_hashes, sampler)
        log(f"turbo build x{plan.reps}")
        result["turbo"] = measure_turbo(targets, plan, hoard_server, repo, binary, sampler, pass_name)
        result["peak_rss"] = sampler.peaks
        result["process_peak_rss"] = sampler.process_peaks
        result["logs"] = {"hoard": str(hoard_server.log_path), "peer": str(peer_server.log_path)}
        return result


def git_state() -> dict:
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return result.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def _raise_on_sigterm(signum, frame):
    # Servers run in sessions of their own: unwind so every one is stopped.
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 MiB and 64 MiB, one repetition, no S3")
    parser.add_argument("--skip-s3", action="store_true", help="local storage only")
    parser.add_argument("--passes", help="comma-separated passes to run: local, s3 (overrides the above)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each phase (default 3)")
    parser.add_argument("--duration", type=float, help="seconds per small-request run (default 5; quick 2)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default WEB_CONCURRENCY or 2*CPUs+1)")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker (default 8)")
    parser.add_argument("--loadgen-processes", type=int, help="load generator processes (default: CPUs)")
    parser.add_argument("--work-dir", type=Path, help="where servers store (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (storage, logs)")
    args = parser.parse_args()
    plan = Plan.from_args(args)
    cpus = os.cpu_count() or 1
    signal.signal(signal.SIGTERM, _raise_on_sigterm)

    services = {
        "postgres": reachable("127.0.0.1", POSTGRES_PORT),
        "redis": reachable("127.0.0.1", REDIS_PORT),
    }
    log(
        f"database: {'PostgreSQL' if services['postgres'] else 'SQLite'}; rate limits: "
        f"{'Redis db 15' if services['redis'] else 'in-process'}; gunicorn {plan.workers} workers x "
        f"{plan.threads} threads; passes: {', '.join(plan.passes)}"
    )
    services["peer_entry"] = peer.install()
    binary = turbo.install()
    log(f"peer {peer.PEER_PACKAGE} {peer.PEER_VERSION}; turbo {turbo.TURBO_VERSION}")

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    if args.work_dir:
        args.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hoard-bench-", dir=args.work_dir))
    started = datetime.now(UTC)
    results: dict = {
        "started": started.isoformat(),
        "argv": sys.argv[1:],
        "plan": plan.__dict__,
        "machine": {
            "cpus": cpus,
            "kernel": platform.release(),
            "python": platform.python_version(),
            "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
            "loadavg_before": os.getloadavg(),
        },
        "versions": {"peer": peer.PEER_VERSION, "turbo": turbo.TURBO_VERSION, "hoard": git_state()},
        "services": {
            "database": "postgresql" if services["postgres"] else "sqlite",
            "rate_limit_storage": REDIS_URL if services["redis"] else "memory://",
            "gunicorn": {"workers": plan.workers, "threads": plan.threads},
        },
        "work_dir": str(work),
    }
    try:
        log(f"work dir {work}")
        bodies = {}
        for size in plan.sizes:
            path = work / f"body-{size}.bin"
            bodies[size] = (path, transfer.write_body(path, size, seed=size))
        limit_body = work / "limit-body.bin"
        transfer.write_body(limit_body, plan.limit_bytes, seed=7)
        limit_runs: dict[str, list[float]] = {}
        results["limits"] = measure_limits(plan, work, limit_body, limit_runs)

        repo = turbo.generate_monorepo(work / "monorepo")
        with loadgen.LoadGenerator(plan.loadgen_processes) as generator:
            capacity = calibrate_loadgen(plan, generator)
            results["loadgen_capacity"] = capacity
            results["passes"] = {}
            for pass_name in plan.passes:
                result = run_pass(pass_name, plan, work, bodies, generator, services, repo, binary)
                results["passes"][pass_name] = result
        # Sampled again at the end: the machine's load drifts during a long run.
        machine = results["limits"] = measure_limits(plan, work, limit_body, limit_runs)
        rows: list[report.Row] = []
        http_rows: list[report.HttpCacheRow] = []
        for pass_name, result in results["passes"].items():
            rows += report.build_rows(pass_name, result, machine, cpus)
            http_rows += report.http_cache_rows(pass_name, result)
        results["rows"] = [row.as_dict() for row in rows]
        results["http_cache_rows"] = [row.__dict__ for row in http_rows]
        results["machine"]["loadavg_after"] = os.getloadavg()
        results["finished"] = datetime.now(UTC).isoformat()
        out = RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}{'-quick' if args.quick else ''}.json"
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        report.print_report(machine, capacity, rows, cpus)
        report.print_http_cache(http_rows)
        print(f"results: {out.relative_to(ROOT)}")
        return 0
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
