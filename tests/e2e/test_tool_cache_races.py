"""Concurrent PUTs of one build tool's key, against gunicorn (2 workers of 4 threads) on
PostgreSQL with local storage.

Twelve clients PUT the same Gradle key at once, each with its own body, while
readers GET it: every read is one whole body some PUT sent, and afterwards
exactly one PUT has won, whole, with exactly one object left for it. Twelve
Nx PUTs of one hash: exactly one is stored (200), every other is 409, and the
stored body is the winner's. And Bazel CAS PUTs racing with a wrong body
never leave the wrong bytes behind.
"""

import hashlib
import os
import threading

import pytest
import requests

from tests.factories import bearer
from tests.live_server import HoardServer

WRITERS = 12
READERS = 3
KiB = 1024


@pytest.fixture(scope="module")
def server(new_postgres_database, tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("tool-races")
    with HoardServer(
        var_dir=var_dir,
        database_url=new_postgres_database(),
        workers=2,
        threads=4,
        env_overrides={"RATELIMIT_ENABLED": "false"},
    ) as hoard:
        yield hoard


def stored_objects(root) -> list[str]:
    base = root / "cache"
    return sorted(str(p.relative_to(root)) for p in base.rglob("*") if p.is_file()) if base.exists() else []


def run_all(targets) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_concurrent_puts_of_one_key_leave_one_whole_winner(server):
    team = server.create_tenant("gradle-race")
    auth = bearer(team.key)
    url = f"{server.url}/cache/gradle/0123456789abcdef0123456789abcdef"
    bodies = [os.urandom(64 * KiB + i * 7919) for i in range(WRITERS)]
    statuses, bad_reads = [], []
    done = threading.Event()

    def writer(body: bytes):
        def run():
            statuses.append(requests.put(url, data=body, headers=auth, timeout=60).status_code)

        return run

    def reader():
        with requests.Session() as session:
            while not done.is_set():
                response = session.get(url, headers=auth, timeout=60)
                if response.status_code == 200 and response.content not in bodies:
                    bad_reads.append(len(response.content))
                elif response.status_code not in (200, 404):
                    bad_reads.append(response.status_code)

    readers = [threading.Thread(target=reader) for _ in range(READERS)]
    for thread in readers:
        thread.start()
    run_all([writer(body) for body in bodies])
    done.set()
    for thread in readers:
        thread.join()

    assert statuses == [200] * WRITERS
    assert bad_reads == []
    final = requests.get(url, headers=auth, timeout=60)
    assert final.status_code == 200
    assert final.content in bodies
    assert int(final.headers["Content-Length"]) == len(final.content)
    assert len(stored_objects(server.var_dir / "storage")) == 1


def test_concurrent_nx_puts_of_one_hash_store_exactly_one(server):
    team = server.create_tenant("nx-race")
    auth = bearer(team.key)
    url = f"{server.url}/v1/cache/5550001112223334445"
    bodies = [os.urandom(32 * KiB + i) for i in range(WRITERS)]
    statuses = {}

    def writer(index: int):
        def run():
            statuses[index] = requests.put(url, data=bodies[index], headers=auth, timeout=60).status_code

        return run

    before = set(stored_objects(server.var_dir / "storage"))
    run_all([writer(i) for i in range(WRITERS)])

    winners = [i for i, status in statuses.items() if status == 200]
    assert len(winners) == 1, statuses
    assert sorted(statuses.values()) == [200] + [409] * (WRITERS - 1)
    assert requests.get(url, headers=auth, timeout=60).content == bodies[winners[0]]
    assert len(set(stored_objects(server.var_dir / "storage")) - before) == 1


def test_racing_bazel_cas_puts_with_a_wrong_body_never_store_it(server):
    team = server.create_tenant("bazel-race")
    auth = bearer(team.key)
    good = os.urandom(48 * KiB)
    url = f"{server.url}/cache/bazel/cas/{hashlib.sha256(good).hexdigest()}"
    statuses = []

    def writer(body: bytes):
        def run():
            statuses.append(requests.put(url, data=body, headers=auth, timeout=60).status_code)

        return run

    before = set(stored_objects(server.var_dir / "storage"))
    run_all([writer(good if i % 2 else os.urandom(48 * KiB)) for i in range(WRITERS)])

    assert sorted(statuses) == [200] * (WRITERS // 2) + [400] * (WRITERS // 2)
    assert requests.get(url, headers=auth, timeout=60).content == good
    assert len(set(stored_objects(server.var_dir / "storage")) - before) == 1
