"""/metrics under gunicorn with three workers: known traffic, spread over the
workers, adds up exactly in one scrape; a worker killed and replaced neither
loses nor doubles what it counted; gc run by `flask gc` in a process of its
own reaches the server's /metrics."""

import os
import secrets
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests import services_env
from tests.live_server import HoardServer

TOKEN = "e2e-metrics-" + secrets.token_hex(8)
WORKERS = 3
SIZE = 1000
MAX_BYTES = 4096
READ_ROUTE = "/v8/artifacts/<path:artifact_hash>"


@pytest.fixture(scope="module")
def server(new_postgres_database, tmp_path_factory):
    services_env.require(services_env.REDIS_URL, "Redis")  # memory:// limits refuse > 1 worker
    hoard = HoardServer(
        var_dir=tmp_path_factory.mktemp("metrics"),
        database_url=new_postgres_database(),
        workers=WORKERS,
        threads=4,
        env_overrides={
            "RATELIMIT_STORAGE_URI": services_env.REDIS_URL,
            "METRICS_TOKEN": TOKEN,
            "CACHE_MAX_ARTIFACT_BYTES": MAX_BYTES,
            # Out of the way: every request must be answered for the sums.
            "RATE_LIMIT_BURST": 1_000_000,
            "RATE_LIMIT_SUSTAINED": 1_000_000,
        },
    )
    with hoard:
        yield hoard


def scrape(server) -> dict[tuple[str, tuple], float]:
    response = requests.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def requests_total(samples, method: str, status: str, route: str = READ_ROUTE) -> float:
    return value(samples, "hoard_http_requests_total", api="v8", route=route, method=method, status=status)


def lookups(samples, method: str, result: str) -> float:
    return value(samples, "hoard_cache_lookups_total", api="v8", method=method, result=result)


def send(server, calls: list[tuple[str, str, bytes | None]], key: str) -> list[int]:
    """Each call on a connection of its own (so the kernel hands them to
    different workers), eight at a time."""
    headers = {"Authorization": f"Bearer {key}"}

    def one(call):
        method, artifact_hash, body = call
        response = requests.request(
            method, f"{server.url}/v8/artifacts/{artifact_hash}", data=body, headers=headers, timeout=30
        )
        response.close()
        return response.status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, calls))


def traffic(server, key: str, hashes: list[str], *, rounds: int) -> dict[str, int]:
    """GETs and HEADs of stored entries and GETs of missing ones; what was sent."""
    calls = []
    for _ in range(rounds):
        calls += [("GET", h, None) for h in hashes]
        calls += [("HEAD", h, None) for h in hashes]
        calls += [("GET", "0000" + secrets.token_hex(8), None) for _ in hashes[:3]]
    statuses = send(server, calls, key)
    assert sorted(set(statuses)) == [200, 404], statuses
    assert statuses.count(200) == 2 * rounds * len(hashes)
    assert statuses.count(404) == 3 * rounds
    return {"hit_get": rounds * len(hashes), "hit_head": rounds * len(hashes), "miss_get": 3 * rounds}


def counter_files(server) -> list[Path]:
    return sorted((server.var_dir / "metrics").glob("counter_*.db"))


def wait_for_replacement(server, killed: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = server.worker_pids()
        if killed not in pids and len(pids) == WORKERS:
            return
        time.sleep(0.2)
    pytest.fail(f"gunicorn did not replace worker {killed}")


def test_counts_add_up_across_workers_and_survive_a_killed_worker(server):
    tenant = server.create_tenant(f"metrics-{secrets.token_hex(3)}")
    hashes = [f"beef{i:02d}{secrets.token_hex(6)}" for i in range(10)]
    start = scrape(server)

    assert send(server, [("PUT", h, os.urandom(SIZE)) for h in hashes], tenant.key) == [202] * len(hashes)
    sent = traffic(server, tenant.key, hashes, rounds=6)
    first = scrape(server)
    # More than one worker answered, each counting into a file of its own.
    assert len(counter_files(server)) >= 2

    def added(samples, since):
        return {
            "put": requests_total(samples, "PUT", "2xx", route=READ_ROUTE)
            - requests_total(since, "PUT", "2xx"),
            "hit_get": requests_total(samples, "GET", "2xx") - requests_total(since, "GET", "2xx"),
            "hit_head": requests_total(samples, "HEAD", "2xx") - requests_total(since, "HEAD", "2xx"),
            "miss_get": requests_total(samples, "GET", "4xx") - requests_total(since, "GET", "4xx"),
            "lookup_hit_get": lookups(samples, "GET", "hit") - lookups(since, "GET", "hit"),
            "lookup_hit_head": lookups(samples, "HEAD", "hit") - lookups(since, "HEAD", "hit"),
            "lookup_miss_get": lookups(samples, "GET", "miss") - lookups(since, "GET", "miss"),
            "served": value(samples, "hoard_served_bytes_total", api="v8")
            - value(since, "hoard_served_bytes_total", api="v8"),
            "uploaded": value(samples, "hoard_uploaded_bytes_total", api="v8")
            - value(since, "hoard_uploaded_bytes_total", api="v8"),
            "timed_get": value(
                samples, "hoard_http_request_duration_seconds_count", api="v8", route=READ_ROUTE, method="GET"
            )
            - value(
                since, "hoard_http_request_duration_seconds_count", api="v8", route=READ_ROUTE, method="GET"
            ),
        }

    def expected(sent, puts):
        return {
            "put": puts,
            "hit_get": sent["hit_get"],
            "hit_head": sent["hit_head"],
            "miss_get": sent["miss_get"],
            "lookup_hit_get": sent["hit_get"],
            "lookup_hit_head": sent["hit_head"],
            "lookup_miss_get": sent["miss_get"],
            "served": sent["hit_get"] * SIZE,
            "uploaded": puts * SIZE,
            "timed_get": sent["hit_get"] + sent["miss_get"],
        }

    assert added(first, start) == expected(sent, len(hashes))

    # Kill a worker that counted: its counts stay in the sums, once.
    counted = {int(path.stem.split("_")[1]) for path in counter_files(server)}
    victim = next(pid for pid in server.worker_pids() if pid in counted)
    os.kill(victim, signal.SIGKILL)
    wait_for_replacement(server, victim)
    after_kill = scrape(server)
    assert added(after_kill, first) == expected({"hit_get": 0, "hit_head": 0, "miss_get": 0}, 0)

    more = traffic(server, tenant.key, hashes, rounds=3)
    last = scrape(server)
    both = {name: sent[name] + more[name] for name in sent}
    assert added(last, start) == expected(both, len(hashes))


def test_a_body_refused_as_it_streams_is_an_aborted_upload(server):
    tenant = server.create_tenant(f"abort-{secrets.token_hex(3)}")
    before = scrape(server)

    def chunks():  # no Content-Length: refused only once past the limit
        for _ in range(8):
            yield b"x" * 1024

    response = requests.put(
        f"{server.url}/v8/artifacts/abcd{secrets.token_hex(6)}",
        data=chunks(),
        headers={"Authorization": f"Bearer {tenant.key}"},
        timeout=30,
    )
    assert response.status_code == 413, response.text
    after = scrape(server)
    labels = {"api": "v8", "reason": "too_large"}
    assert (
        value(after, "hoard_uploads_aborted_total", **labels)
        - value(before, "hoard_uploads_aborted_total", **labels)
        == 1
    )


def test_gc_in_another_process_reaches_metrics(server):
    before = scrape(server)
    server.flask("gc")
    server.flask("gc")
    after = scrape(server)
    assert value(after, "hoard_gc_runs_total") - value(before, "hoard_gc_runs_total") == 2
    assert value(after, "hoard_gc_last_run_timestamp_seconds") > 0
    assert ("hoard_gc_removed_objects_total", (("category", "cache_expired"),)) in after


def test_storage_per_tenant_at_scrape_time(server):
    tenant = server.create_tenant(f"stored-{secrets.token_hex(3)}")
    hashes = [f"cafe{i:02d}{secrets.token_hex(6)}" for i in range(4)]
    assert send(server, [("PUT", h, os.urandom(SIZE)) for h in hashes], tenant.key) == [202] * 4
    samples = scrape(server)
    assert value(samples, "hoard_tenant_storage_objects", tenant=tenant.slug, kind="cache") == 4
    assert value(samples, "hoard_tenant_storage_bytes", tenant=tenant.slug, kind="cache") == 4 * SIZE


def test_start_up_empties_the_directory_and_metrics_off_makes_no_files(new_postgres_database, tmp_path):
    var_dir = tmp_path / "hoard"
    leftover = var_dir / "metrics" / "counter_1.db"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"a previous server's counts")
    env = {"RATELIMIT_STORAGE_URI": services_env.REDIS_URL, "METRICS_TOKEN": TOKEN}
    with HoardServer(
        var_dir=var_dir, database_url=new_postgres_database(), workers=2, env_overrides=env
    ) as hoard:
        assert not leftover.exists()
        assert value(scrape(hoard), "hoard_tenants") == 0

    quiet = tmp_path / "quiet"
    env = {**env, "METRICS": "off"}
    with HoardServer(
        var_dir=quiet, database_url=new_postgres_database(), workers=2, env_overrides=env
    ) as hoard:
        tenant = hoard.create_tenant("quiet")
        assert send(hoard, [("PUT", "abc123", b"x")], tenant.key) == [202]
        assert send(hoard, [("GET", "abc123", None)], tenant.key) == [200]
        response = requests.get(
            f"{hoard.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )
        assert response.status_code == 404
        assert not (quiet / "metrics").exists()
