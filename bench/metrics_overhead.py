"""Small HEAD/GET throughput with metrics on against metrics off.

    .venv/bin/python bench/metrics_overhead.py [--reps N] [--duration S] [--concurrency 8,32]

Two Hoards under gunicorn with gunicorn.conf.py, identical but for METRICS
(on: METRICS_TOKEN set, multiprocess files; off: METRICS=off), each on its
own PostgreSQL database, sharing Redis for rate limits (raised out of the
way) when both services are up, else SQLite and in-process limits with one
worker. Each rep runs the two in turn (which goes first alternates) with the
same closed-loop generator as `make bench` over the same 64 cached 1 KiB
artifacts. Prints the median req/s of each, the ratio on/off per row and over
all rows, and exits 1 when the ratio falls below --target (0.95). The
servers' CPU time per request is printed beside it, and last, what the
instrumentation alone costs per request, timed in a process of its own: on a
busy machine the throughput of two servers taking turns moves by more than
that from one run to the next.
"""

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import loadgen, transfer  # noqa: E402
from bench.proctree import tree_cpu  # noqa: E402
from bench.run import (  # noqa: E402
    POSTGRES_PORT,
    RAISED_LIMIT,
    REDIS_PORT,
    REDIS_URL,
    SMALL_SIZE,
    bench_database,
    reachable,
)
from tests.live_server import HoardServer  # noqa: E402

ARTIFACTS = 64


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def requests_for(port: int, token: str, slug: str, method: str, hashes: list[str]) -> list[bytes]:
    return [
        (
            f"{method} /v8/artifacts/{h}?slug={slug} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nUser-Agent: hoard-bench\r\n\r\n"
        ).encode()
        for h in hashes
    ]


def instrumentation_cost() -> None:
    """Run in a process of its own with PROMETHEUS_MULTIPROC_DIR set: the CPU
    time the instrumentation adds to one small GET (the middleware's count
    and timing, a cache lookup, the bytes served), as gunicorn's workers pay
    it. Prints microseconds."""
    from app import metrics

    def app(environ, start_response):
        start_response("200 OK", [])
        metrics.cache_lookup("GET", hit=True)
        metrics.bytes_served(SMALL_SIZE)
        return [b""]

    def bare(environ, start_response):
        start_response("200 OK", [])
        return [b""]

    environ = {
        "PATH_INFO": "/v8/artifacts/0123456789abcdef",
        "REQUEST_METHOD": "GET",
        metrics.ROUTE_KEY: "/v8/artifacts/<path:artifact_hash>",
    }
    timed = {}
    for name, wsgi in (("instrumented", metrics.RequestMetrics(app)), ("bare", bare)):
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            for _ in range(20_000):
                wsgi(environ, lambda status, headers, exc_info=None: None)
            best = min(best, (time.process_time() - started) / 20_000)
        timed[name] = best
    print(f"{(timed['instrumented'] - timed['bare']) * 1e6:.2f}")


def measure_instrumentation(work: Path) -> float:
    directory = work / "micro"
    directory.mkdir()
    result = subprocess.run(
        [sys.executable, __file__, "--instrumentation-cost"],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--concurrency", default="8,32", help="connections, comma-separated")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: gunicorn.conf.py's)")
    parser.add_argument("--target", type=float, default=0.95, help="the least on/off ratio that passes")
    parser.add_argument("--instrumentation-cost", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.instrumentation_cost:
        instrumentation_cost()
        return 0
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    use_postgres = reachable("127.0.0.1", POSTGRES_PORT)
    use_redis = reachable("127.0.0.1", REDIS_PORT)
    cpus = os.cpu_count() or 1
    workers = args.workers or (cpus * 2 + 1 if use_redis else 1)
    log(
        f"PostgreSQL {'up' if use_postgres else 'down (SQLite)'}, Redis {'up' if use_redis else 'down'}; "
        f"{workers} workers each"
    )
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hoard-metrics-bench-")))
        hashes = [f"small{i:03d}{secrets.token_hex(5)}" for i in range(ARTIFACTS)]
        servers = {}
        for name, settings in (
            ("on", {"METRICS": "on", "METRICS_TOKEN": secrets.token_hex(16)}),
            ("off", {"METRICS": "off"}),
        ):
            var_dir = work / name
            url = stack.enter_context(bench_database(use_postgres, var_dir, f"hoard_bench_metrics_{name}"))
            env = {
                "DOWNLOAD_MODE": "sendfile",
                "RATE_LIMIT_BURST": RAISED_LIMIT,
                "RATE_LIMIT_SUSTAINED": RAISED_LIMIT,
                "RATELIMIT_STORAGE_URI": REDIS_URL if use_redis else "memory://",
                "ACCESS_LOG": "off",
                **settings,
            }
            server = stack.enter_context(
                HoardServer(var_dir=var_dir, database_url=url, workers=workers, env_overrides=env)
            )
            tenant = server.create_tenant(f"bench-{name}")
            for h in hashes:
                path = f"/v8/artifacts/{h}?slug={tenant.slug}"
                assert transfer.put_bytes(server.port, path, tenant.key, os.urandom(SMALL_SIZE)) < 300
            servers[name] = (server, tenant)
        generator = stack.enter_context(loadgen.LoadGenerator(cpus))
        rows: dict[str, dict[str, list[float]]] = {}
        cpu: dict[str, dict[str, list[float]]] = {}
        # Warm every worker and code path of both before anything counts.
        for server, tenant in servers.values():
            for method in ("HEAD", "GET"):
                generator.run(
                    server.port,
                    requests_for(server.port, tenant.key, tenant.slug, method, hashes),
                    head=method == "HEAD",
                    concurrency=max(concurrencies),
                    duration=2.0,
                )
        for method in ("HEAD", "GET"):
            for concurrency in concurrencies:
                key = f"{method} c={concurrency}"
                rows[key] = {"on": [], "off": []}
                cpu[key] = {"on": [], "off": []}
                for rep in range(args.reps):
                    order = ["on", "off"] if rep % 2 == 0 else ["off", "on"]
                    for name in order:
                        server, tenant = servers[name]
                        result = generator.run(
                            server.port,
                            requests_for(server.port, tenant.key, tenant.slug, method, hashes),
                            head=method == "HEAD",
                            concurrency=concurrency,
                            duration=args.duration,
                            cpu_probes={"server": partial(tree_cpu, server.process.pid)},
                        )
                        if result.errors:
                            raise SystemExit(f"{name} {key}: {result.errors} errors {result.statuses}")
                        rows[key][name].append(result.requests_per_s)
                        cpu[key][name].append(result.per_request_us("server"))
                on, off = (statistics.median(rows[key][n]) for n in ("on", "off"))
                on_us, off_us = (statistics.median(cpu[key][n]) for n in ("on", "off"))
                log(
                    f"  {key:10} on {on:7.0f} req/s  off {off:7.0f} req/s  on/off {on / off:.3f}   "
                    f"server CPU/request on {on_us:5.0f} us  off {off_us:5.0f} us"
                )
        ratios = [statistics.median(r["on"]) / statistics.median(r["off"]) for r in rows.values()]
        overall = statistics.geometric_mean(ratios)
        log(f"on/off over all rows (geometric mean of the medians' ratios): {overall:.3f}")
        added = measure_instrumentation(work)
        least = min(statistics.median(c["off"]) for c in cpu.values())
        log(
            f"instrumentation alone: {added:.1f} us of CPU per small GET, {added / least:.1%} of the "
            f"cheapest row's server CPU per request with metrics off ({least:.0f} us)"
        )
        return 0 if overall >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
