"""Concurrent PUTs of one cache hash leave exactly one object, on every
database: the entry's key is swapped by compare-and-swap, so each replaced
object is deleted by exactly one PUT (issue 12, item 5)."""

import threading

import pytest

from app.services import cache as cache_service
from tests.storage_probe import stored_files

pytestmark = pytest.mark.storage

HASH = "0123456789abcdef"


def put(client, auth, body: bytes) -> int:
    return client.put(f"/v8/artifacts/{HASH}", data=body, headers=auth).status_code


def test_sixteen_concurrent_puts_of_one_hash_leave_one_object(app, client, auth):
    statuses = []
    start = threading.Barrier(16)

    def run(index: int) -> None:
        start.wait(timeout=30)
        statuses.append(put(client, auth, bytes([index]) * (1000 + index)))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert statuses == [202] * 16
    served = client.get(f"/v8/artifacts/{HASH}", headers=auth).data
    assert [file.size for file in stored_files(app)] == [len(served)]


def test_a_put_that_commits_inside_another_leaves_one_object(app, client, auth, monkeypatch):
    """Forced: B replaces the entry after A read it and before A swaps."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("PostgreSQL's row lock makes B wait for A: the interleaving cannot happen")
    assert put(client, auth, b"first") == 202
    real_now = cache_service.now
    overtaken = []

    def b_commits_first():
        if not overtaken:
            overtaken.append("B")  # B's own swap reads the clock too
            overtaken.append(put(client, auth, b"B's body"))
        return real_now()

    monkeypatch.setattr(cache_service, "now", b_commits_first)
    assert put(client, auth, b"A's body, committed last") == 202
    monkeypatch.undo()

    assert overtaken == ["B", 202]
    assert client.get(f"/v8/artifacts/{HASH}", headers=auth).data == b"A's body, committed last"
    assert len(stored_files(app)) == 1
