"""The storage contract, run over every backend (see conftest.py)."""

import hashlib
import io
import random
import time

import pytest
import requests

from app.storage import BodyTooLarge, IncompleteBody, ObjectNotFound, StorageError

MiB = 1024 * 1024
LIMIT = 64 * MiB


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ShortReads(io.RawIOBase):
    """Hands out at most `step` bytes per read, as a socket does."""

    def __init__(self, data: bytes, step: int = 64 * 1024):
        self._data = io.BytesIO(data)
        self._step = step

    def read(self, size: int = -1) -> bytes:
        return self._data.read(self._step if size < 0 else min(size, self._step))


class ClientGone(Exception):
    pass


class BrokenClient(io.RawIOBase):
    """Sends `fail_after` bytes, then the connection drops."""

    def __init__(self, data: bytes, fail_after: int):
        self._data = io.BytesIO(data)
        self._fail_after = fail_after

    def read(self, size: int = -1) -> bytes:
        if self._data.tell() >= self._fail_after:
            raise ClientGone()
        return self._data.read(min(size, self._fail_after - self._data.tell()))


def put(storage, key: str, data: bytes, **kwargs):
    return storage.put_stream(key, io.BytesIO(data), max_size=kwargs.pop("max_size", LIMIT), **kwargs)


def read(storage, key: str, byte_range=None) -> bytes:
    with storage.open_read(key, byte_range) as fh:
        return fh.read()


@pytest.mark.parametrize("size", [0, 1, 100_000])
def test_round_trip(storage, size):
    data = payload(size)
    stored = put(storage, "cache/t1/a/v1", data, expected_size=size)
    assert (stored.key, stored.size, stored.sha256) == ("cache/t1/a/v1", size, sha256(data))
    assert storage.stat("cache/t1/a/v1") == size
    assert read(storage, "cache/t1/a/v1") == data
    assert storage.hash_object("cache/t1/a/v1") == stored


@pytest.mark.parametrize("size", [0, 100_000, 6 * MiB], ids=["empty", "small", "multipart"])
def test_round_trip_without_hashing(storage, size):
    data = payload(size)
    stored = put(storage, "cache/t1/b/v1", data, expected_size=size, sha256=False)
    assert (stored.size, stored.sha256) == (size, None)
    assert read(storage, "cache/t1/b/v1") == data
    assert storage.hash_object("cache/t1/b/v1").sha256 == sha256(data)


@pytest.mark.parametrize(
    ("size", "expected_size"),
    [(12 * MiB, 12 * MiB), (12 * MiB, None), (33 * MiB + 7, 33 * MiB + 7)],
    # S3 keeps parts uploading while it reads on: seven parts outnumber those in flight.
    ids=["announced", "unannounced", "seven-parts"],
)
def test_multipart_body(storage, probe, size, expected_size):
    data = payload(size)
    stored = storage.put_stream("blobs/t1/big", ShortReads(data), max_size=LIMIT, expected_size=expected_size)
    assert (stored.size, stored.sha256) == (len(data), sha256(data))
    assert storage.hash_object("blobs/t1/big") == stored
    assert probe.leftovers() == []


@pytest.mark.parametrize("size", [5 * MiB, 5 * MiB + 1], ids=["one-part", "one-part-and-a-byte"])
def test_part_boundary(storage, size):
    data = payload(size)
    stored = put(storage, "blobs/t1/edge", data)
    assert (stored.size, stored.sha256) == (size, sha256(data))
    assert storage.hash_object("blobs/t1/edge") == stored


FAILED_PUTS = [
    pytest.param(lambda: io.BytesIO(payload(2000)), {"max_size": 1000}, BodyTooLarge, id="too-large"),
    pytest.param(
        lambda: io.BytesIO(payload(12 * MiB)), {"max_size": 6 * MiB}, BodyTooLarge, id="too-large-multipart"
    ),
    pytest.param(lambda: io.BytesIO(payload(500)), {"expected_size": 1000}, IncompleteBody, id="short"),
    pytest.param(
        lambda: io.BytesIO(payload(7 * MiB)),
        {"expected_size": 12 * MiB},
        IncompleteBody,
        id="short-multipart",
    ),
    pytest.param(lambda: BrokenClient(payload(2000), 1000), {}, ClientGone, id="client-gone"),
    pytest.param(
        lambda: BrokenClient(payload(12 * MiB), 7 * MiB), {}, ClientGone, id="client-gone-multipart"
    ),
    # Gone after five parts: some still uploading when the read fails.
    pytest.param(
        lambda: BrokenClient(payload(40 * MiB), 27 * MiB), {}, ClientGone, id="client-gone-parts-in-flight"
    ),
]


@pytest.mark.parametrize(("stream", "limits", "error"), FAILED_PUTS)
def test_failed_put_leaves_nothing(storage, probe, stream, limits, error):
    old = payload(300, seed=1)
    put(storage, "cache/t1/a/kept", old)
    limits = {"max_size": LIMIT, **limits}

    with pytest.raises(error):
        storage.put_stream("cache/t1/a/kept", stream(), **limits)
    with pytest.raises(error):
        storage.put_stream("cache/t1/a/fresh", stream(), **limits)

    assert read(storage, "cache/t1/a/kept") == old
    with pytest.raises(ObjectNotFound):
        storage.stat("cache/t1/a/fresh")
    assert [key for key, _, _ in storage.iter_keys("")] == ["cache/t1/a/kept"]
    assert probe.leftovers() == []


def test_open_read_ranges(storage):
    data = payload(1000)
    put(storage, "k/obj", data)
    assert read(storage, "k/obj") == data
    assert read(storage, "k/obj", (0, 0)) == data[:1]
    assert read(storage, "k/obj", (10, 19)) == data[10:20]
    assert read(storage, "k/obj", (990, 999)) == data[990:]


def test_open_read_in_chunks(storage):
    data = payload(3 * MiB + 17)
    put(storage, "k/obj", data)
    with storage.open_read("k/obj") as fh:
        chunks = list(iter(lambda: fh.read(MiB), b""))
    assert b"".join(chunks) == data
    assert max(len(chunk) for chunk in chunks) <= MiB


def test_put_replaces(storage):
    put(storage, "k/obj", b"first")
    put(storage, "k/obj", b"second")
    assert read(storage, "k/obj") == b"second"
    assert storage.stat("k/obj") == 6


def test_delete_is_idempotent(storage):
    put(storage, "k/obj", b"bytes")
    storage.delete("k/obj")
    with pytest.raises(ObjectNotFound):
        storage.stat("k/obj")
    storage.delete("k/obj")
    storage.delete("k/never-was")


@pytest.mark.parametrize(
    "operation",
    [
        lambda s: s.stat("k/missing"),
        lambda s: s.open_read("k/missing"),
        lambda s: s.open_read("k/missing", (0, 9)),
        lambda s: s.hash_object("k/missing"),
    ],
    ids=["stat", "open_read", "open_read-range", "hash_object"],
)
def test_missing_key(storage, operation):
    with pytest.raises(ObjectNotFound):
        operation(storage)


def test_local_path(storage):
    put(storage, "k/obj", b"bytes")
    path = storage.local_path("k/obj")
    if storage.name == "s3":
        assert path is None
    else:
        with open(path, "rb") as fh:
            assert fh.read() == b"bytes"


def test_presign_get(storage):
    data = payload(2000)
    put(storage, "k/obj", data)
    url = storage.presign_get(
        "k/obj", expires_in=60, filename="résumé build.tar", content_type="application/x-tar"
    )
    if storage.name == "local":
        assert url is None
        return
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["Content-Type"] == "application/x-tar"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"r_sum_ build.tar\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20build.tar"
    )
    plain = requests.get(storage.presign_get("k/obj", expires_in=60), timeout=10)
    assert plain.content == data
    assert "Content-Disposition" not in plain.headers


def test_presign_put(storage):
    data = payload(3000)
    presigned = storage.presign_put(
        "uploads/t1/a1", expires_in=60, size=len(data), content_type="application/gzip"
    )
    if storage.name == "local":
        assert presigned is None
        return
    assert presigned.headers == {"Content-Type": "application/gzip"}
    response = requests.put(presigned.url, data=data, headers=presigned.headers, timeout=10)
    assert response.status_code == 200
    stored = storage.hash_object("uploads/t1/a1")
    assert (stored.size, stored.sha256) == (len(data), sha256(data))


def test_sweep_abandoned_takes_the_partials_of_keys_no_longer_live(storage, probe):
    put(storage, "k/obj", b"kept")
    probe.abandon(size=1234, key="staging/crashed")
    probe.abandon(size=10, key="staging/in-flight")
    assert len(probe.leftovers()) == 2
    live = {"staging/in-flight"}

    assert storage.sweep_abandoned(lambda: live) == (1, 1234)
    assert len(probe.leftovers()) == 1
    assert read(storage, "k/obj") == b"kept"

    live.clear()  # that upload died too
    assert storage.sweep_abandoned(lambda: live) == (1, 10)
    assert probe.leftovers() == []
    assert storage.sweep_abandoned(lambda: live) == (0, 0)


def test_copy(storage):
    put(storage, "staging/t1/src", b"0123456789")
    storage.copy("staging/t1/src", "blobs/t1/dst")
    put(storage, "staging/t1/src", b"replaced")  # the copy keeps what it copied
    assert read(storage, "blobs/t1/dst") == b"0123456789"
    with pytest.raises(ObjectNotFound):
        storage.copy("staging/t1/missing", "blobs/t1/other")


def test_iter_keys(storage, probe):
    started = time.time()
    put(storage, "cache/t1/a/v1", b"1")
    put(storage, "cache/t1/b/v1", b"22")
    put(storage, "cache/t2/a/v1", b"333")
    probe.abandon(size=10)

    listed = {key: (size, modified) for key, size, modified in storage.iter_keys("cache/t1/")}
    assert {key: size for key, (size, _) in listed.items()} == {"cache/t1/a/v1": 1, "cache/t1/b/v1": 2}
    assert all(abs(modified - started) < 300 for _, modified in listed.values())
    assert sorted(key for key, _, _ in storage.iter_keys("")) == [
        "cache/t1/a/v1",
        "cache/t1/b/v1",
        "cache/t2/a/v1",
    ]
    assert list(storage.iter_keys("cache/t9/")) == []


def test_check(storage):
    storage.check()


def test_check_fails(broken_storage):
    with pytest.raises(StorageError):
        broken_storage.check()
