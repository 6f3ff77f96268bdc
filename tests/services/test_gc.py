"""Garbage collection, on SQLite and PostgreSQL (the `app` fixture), local
storage and S3 (moto). Time moves with app.clock; file ages with os.utime."""

import base64
import io
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from app import cli
from app.extensions import db
from app.models import Artifact, ArtifactMeta, Blob, CacheEntry, IdempotencyRecord, Link
from app.services import gc, leases, tenants
from app.services.artifacts import uploads
from app.storage import ObjectNotFound, get_storage
from app.storage.keys import partial_tag
from tests import clock

pytestmark = pytest.mark.storage

DATA = b"the same bytes, uploaded more than once\n" * 10
OTHER = b"different bytes\n" * 7
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


# ---------------------------------------------------------------- helpers


def run_gc(**options) -> gc.GcReport:
    return gc.collect(now=clock.now(), **options)


def tally(report_tally: gc.Tally | None) -> tuple[int, int] | None:
    return None if report_tally is None else (report_tally.count, report_tally.bytes)


def upload(client, auth, data: bytes = DATA, *, headers: dict | None = None, **fields) -> str:
    body = {"filename": "out.bin", "content": base64.b64encode(data).decode(), **fields}
    response = client.post("/v1/artifacts", json=body, headers={**auth, **(headers or {})})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["artifact_id"]


def delete(client, auth, artifact_id: str) -> None:
    assert client.delete(f"/v1/artifacts/{artifact_id}", headers=auth).status_code == 200


def download(client, auth, artifact_id: str) -> bytes:
    ticket = client.get(f"/v1/artifacts/{artifact_id}/download-url", headers=auth)
    assert ticket.status_code == 200, ticket.get_json()
    response = client.get(ticket.get_json()["download_url"])
    assert response.status_code == 200
    return response.data


def reserve(client, auth, data: bytes | None) -> str:
    """A presigned reservation for len(data) bytes; the bytes PUT unless None."""
    size = len(data) if data is not None else 100
    response = client.post(
        "/v1/artifacts/upload-url", json={"filename": "big.bin", "size_bytes": size}, headers=auth
    )
    assert response.status_code == 201, response.get_json()
    ticket = response.get_json()
    if data is not None:
        if ticket["upload_url"].startswith("http://localhost/"):
            put = client.put(ticket["upload_url"], data=data, headers=ticket["upload_headers"])
        else:  # S3's own presigned URL
            put = requests.put(ticket["upload_url"], data=data, headers=ticket["upload_headers"], timeout=10)
        assert put.status_code == 200, put.text
    return ticket["artifact_id"]


def cache_put(client, auth, artifact_hash: str, body: bytes) -> None:
    response = client.put(
        f"/v8/artifacts/{artifact_hash}",
        data=body,
        headers={**auth, "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 202, response.get_json()


def cache_get(client, auth, artifact_hash: str) -> int:
    return client.get(f"/v8/artifacts/{artifact_hash}", headers=auth).status_code


def rows(model) -> int:
    db.session.rollback()  # see the requests' commits
    return db.session.scalar(select(func.count()).select_from(model))


def blob_keys() -> set[str]:
    db.session.rollback()
    return set(db.session.scalars(select(Blob.storage_key)))


def objects() -> dict[str, int]:
    """Every stored object (not temporary uploads) and its size."""
    return {key: size for key, size, _ in get_storage().iter_keys("")}


def exists(key: str) -> bool:
    try:
        get_storage().stat(key)
    except ObjectNotFound:
        return False
    return True


def age(key: str, by: timedelta) -> None:
    """Make a local object look older than it is."""
    path = get_storage().local_path(key)
    old = time.time() - by.total_seconds()
    os.utime(path, (old, old))


def put_object(key: str, data: bytes) -> None:
    get_storage().put_stream(key, io.BytesIO(data), max_size=len(data))


def snapshot() -> dict:
    return {
        "rows": {model.__name__: rows(model) for model in (Artifact, ArtifactMeta, Blob, CacheEntry, Link)},
        "objects": objects(),
    }


# ---------------------------------------------------------------- artifacts


def test_deleted_artifact_goes_with_its_rows_and_blob_after_30_days(client, auth):
    artifact_id = upload(client, auth, headers={"Idempotency-Key": "once"}, metadata={"build": "42"})
    assert client.post(f"/v1/artifacts/{artifact_id}/links", headers=auth).status_code == 201
    (key,) = blob_keys()
    delete(client, auth, artifact_id)

    clock.advance(29 * DAY)
    report = run_gc()
    assert (tally(report.artifacts), tally(report.blobs)) == ((0, 0), (0, 0))
    assert rows(Artifact) == 1 and exists(key)

    clock.advance(2 * DAY)
    report = run_gc()

    assert tally(report.artifacts) == (1, 0)
    assert tally(report.blobs) == (1, len(DATA))
    for model in (Artifact, ArtifactMeta, Link, IdempotencyRecord, Blob):
        assert rows(model) == 0, model.__name__
    assert objects() == {}
    assert client.get(f"/v1/artifacts/{artifact_id}", headers=auth).status_code == 404


def test_expired_artifact_goes_30_days_after_it_expired(client, auth):
    artifact_id = upload(client, auth, ttl="1d")

    clock.advance(DAY + 29 * DAY)
    assert tally(run_gc().artifacts) == (0, 0)
    assert client.get(f"/v1/artifacts/{artifact_id}", headers=auth).status_code == 410

    clock.advance(2 * DAY)
    report = run_gc()

    assert (tally(report.artifacts), tally(report.blobs)) == ((1, 0), (1, len(DATA)))
    assert rows(Artifact) == rows(Blob) == 0
    assert objects() == {}


def test_a_live_artifact_sharing_the_blob_keeps_its_bytes(client, auth):
    gone = upload(client, auth, ttl="never")
    kept = upload(client, auth, ttl="never")
    (key,) = blob_keys()
    delete(client, auth, gone)
    clock.advance(31 * DAY)

    report = run_gc()

    assert (tally(report.artifacts), tally(report.blobs)) == ((1, 0), (0, 0))
    assert blob_keys() == {key} and exists(key)
    assert download(client, auth, kept) == DATA

    delete(client, auth, kept)
    clock.advance(31 * DAY)
    report = run_gc()

    assert (tally(report.artifacts), tally(report.blobs)) == ((1, 0), (1, len(DATA)))
    assert objects() == {}
    # The same bytes uploaded again make a new blob.
    again = upload(client, auth, ttl="never")
    assert download(client, auth, again) == DATA


def test_soft_deleted_reservation_goes_with_its_uploaded_bytes(client, auth):
    pending = reserve(client, auth, OTHER)
    delete(client, auth, pending)
    clock.advance(31 * DAY)

    report = run_gc()

    # The URL expired long before the grace ended: it goes as a reservation.
    assert tally(report.reservations) == (1, len(OTHER))
    assert tally(report.artifacts) == (0, 0)
    assert rows(Artifact) == 0 and objects() == {}


# ---------------------------------------------------------------- reservations


def test_reservations_go_once_their_upload_url_expired(client, auth):
    with_bytes = reserve(client, auth, OTHER)
    without_bytes = reserve(client, auth, None)
    completed = reserve(client, auth, DATA)
    assert client.post(f"/v1/artifacts/{completed}/complete", headers=auth).status_code == 200

    clock.advance(59 * timedelta(minutes=1))
    assert tally(run_gc().reservations) == (0, 0)
    assert rows(Artifact) == 3

    clock.advance(2 * timedelta(minutes=1))
    report = run_gc()

    assert tally(report.reservations) == (2, len(OTHER))
    for artifact_id in (with_bytes, without_bytes):
        assert client.get(f"/v1/artifacts/{artifact_id}", headers=auth).status_code == 404
    assert download(client, auth, completed) == DATA
    assert set(objects()) == blob_keys()


# ---------------------------------------------------------------- build cache


def test_cache_entries_unread_for_the_retention_are_evicted(client, auth, tenant_and_key):
    cache_put(client, auth, "aaaa", b"a" * 100)
    cache_put(client, auth, "bbbb", b"b" * 70)
    clock.advance(20 * DAY)
    assert cache_get(client, auth, "aaaa") == 200  # refreshes its last read

    clock.advance(11 * DAY)
    report = run_gc()

    assert tally(report.cache_expired) == (1, 70)
    assert cache_get(client, auth, "bbbb") == 404
    assert cache_get(client, auth, "aaaa") == 200
    assert rows(CacheEntry) == 1 and len(objects()) == 1

    # The tenant's own retention.
    tenants.update_tenant(tenant_and_key[0], cache_retention_days=7)
    clock.advance(8 * DAY)
    assert tally(run_gc().cache_expired) == (1, 100)
    assert rows(CacheEntry) == 0 and objects() == {}


def test_cache_over_its_cap_loses_the_least_recently_read(client, auth, tenant_and_key):
    tenants.update_tenant(tenant_and_key[0], cache_max_bytes=250)
    for artifact_hash in ("h1", "h2", "h3"):
        cache_put(client, auth, artifact_hash, artifact_hash.encode() * 50)  # 100 bytes each
        clock.advance(2 * HOUR)
    assert cache_get(client, auth, "h1") == 200  # read order now: h2, h3, h1

    report = run_gc()

    assert tally(report.cache_over_cap) == (1, 100)
    assert tally(report.cache_expired) == (0, 0)
    assert [cache_get(client, auth, h) for h in ("h1", "h2", "h3")] == [200, 404, 200]

    tenants.update_tenant(tenant_and_key[0], cache_max_bytes=99)
    report = run_gc()
    assert tally(report.cache_over_cap) == (2, 200)
    assert rows(CacheEntry) == 0 and objects() == {}


def test_a_cache_entry_replaced_since_it_was_chosen_is_kept(client, auth, monkeypatch):
    cache_put(client, auth, "aaaa", b"old" * 10)
    clock.advance(31 * DAY)
    real_evict = gc._evict

    def replaced_meanwhile(tenant_id, chosen, *args, **kwargs):
        cache_put(client, auth, "aaaa", b"new" * 20)
        return real_evict(tenant_id, chosen, *args, **kwargs)

    monkeypatch.setattr(gc, "_evict", replaced_meanwhile)
    report = run_gc()

    assert tally(report.cache_expired) == (0, 0)
    assert client.get("/v8/artifacts/aaaa", headers=auth).data == b"new" * 20


# ---------------------------------------------------------------- storage sweeps


@pytest.mark.local_storage
def test_partial_uploads_go_at_the_first_gc_after_their_writer_died(app):
    """Not after an hour: a partial goes as soon as no live lease names its key."""
    tmp = Path(app.config["STORAGE_LOCAL_ROOT"]) / ".tmp"
    tmp.mkdir(parents=True)
    (tmp / f"put-{partial_tag('blobs/t/crashed')}-abc.part").write_bytes(b"x" * 1234)
    leases.acquire("blobs/t/in-flight")
    (tmp / f"put-{partial_tag('blobs/t/in-flight')}-def.part").write_bytes(b"y" * 10)

    report = run_gc()

    assert tally(report.abandoned_uploads) == (1, 1234)
    assert [p.name.split("-")[1] for p in tmp.iterdir()] == [partial_tag("blobs/t/in-flight")]

    # Its writer stops beating: dead after a few intervals, gone at the next gc.
    clock.advance(timedelta(seconds=app.config["UPLOAD_HEARTBEAT_SECONDS"] * leases.MISSED_BEATS + 1))
    assert tally(run_gc().abandoned_uploads) == (1, 10)
    assert list(tmp.iterdir()) == []


@pytest.mark.local_storage
def test_orphans_go_at_once_and_referenced_or_leased_objects_stay(app, client, auth, tenant_and_key):
    tenant = tenant_and_key[0]
    live = upload(client, auth, ttl="never")
    pending = reserve(client, auth, OTHER)
    cache_put(client, auth, "aaaa", b"cached")
    referenced = set(objects())
    orphans = {f"blobs/{tenant.id}/orphan1": b"1" * 11, f"cache/{tenant.id}/aaaa/old": b"2" * 22}
    for key, data in orphans.items():
        put_object(key, data)
    put_object("blobs/not-our-layout", b"???")  # never touched: not a key gc understands
    in_flight = f"blobs/{tenant.id}/in-flight"
    leases.acquire(in_flight)  # written, its row not yet committed
    put_object(in_flight, b"3" * 33)

    report = run_gc()

    assert tally(report.orphans) == (2, 33)
    assert set(objects()) == referenced | {"blobs/not-our-layout", in_flight}
    assert download(client, auth, live) == DATA
    assert client.post(f"/v1/artifacts/{pending}/complete", headers=auth).status_code == 200
    assert cache_get(client, auth, "aaaa") == 200

    # Its lease is measured on the gc's clock.
    clock.advance(timedelta(seconds=app.config["UPLOAD_HEARTBEAT_SECONDS"] * leases.MISSED_BEATS + 1))
    assert tally(run_gc().orphans) == (1, 33)
    assert not exists(in_flight)


# ---------------------------------------------------------------- dry run and report


def _every_category(app, client, auth, tenant_and_key) -> str:
    """One of each: returns the key of the orphan."""
    tenant = tenant_and_key[0]
    delete(client, auth, upload(client, auth, OTHER, ttl="never"))  # blob released
    upload(client, auth, ttl="never")
    delete(client, auth, upload(client, auth, ttl="never"))  # shares a live blob
    reserve(client, auth, b"r" * 40)  # expired reservation
    cache_put(client, auth, "stale", b"s" * 60)  # past retention
    clock.advance(31 * DAY)
    tenants.update_tenant(tenant, cache_max_bytes=150)
    for artifact_hash in ("c1", "c2"):
        cache_put(client, auth, artifact_hash, b"c" * 100)  # one over the cap
        clock.advance(HOUR)
    orphan = f"blobs/{tenant.id}/orphan"
    put_object(orphan, b"o" * 5)
    tmp = Path(app.config["STORAGE_LOCAL_ROOT"]) / ".tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "put-crashed.part").write_bytes(b"t" * 7)
    os.utime(tmp / "put-crashed.part", (time.time() - 7200, time.time() - 7200))
    return orphan


@pytest.mark.local_storage
def test_dry_run_reports_what_a_run_frees_and_deletes_nothing(app, client, auth, tenant_and_key):
    _every_category(app, client, auth, tenant_and_key)
    before = snapshot()

    dry = run_gc(dry_run=True)

    assert snapshot() == before
    assert (Path(app.config["STORAGE_LOCAL_ROOT"]) / ".tmp" / "put-crashed.part").exists()
    expected = {
        "reservations": (1, 40),
        "artifacts": (2, 0),
        "blobs": (1, len(OTHER)),
        "cache_expired": (1, 60),
        "cache_over_cap": (1, 100),
        "orphans": (1, 5),
        "records": (0, 0),
    }
    assert {name: tally(t) for name, t in dry.categories() if t is not None} == expected
    assert dry.abandoned_uploads is None

    real = run_gc()

    assert {name: tally(t) for name, t in real.categories()} == {**expected, "abandoned_uploads": (1, 7)}
    assert tally(real.total) == (8, 40 + len(OTHER) + 60 + 100 + 5 + 7)
    assert set(objects()) == blob_keys() | set(db.session.scalars(select(CacheEntry.storage_key)))
    assert tally(run_gc().total) == (0, 0)


@pytest.mark.local_storage
def test_flask_gc_prints_each_category_and_the_total(app, client, auth, tenant_and_key, runner):
    _every_category(app, client, auth, tenant_and_key)

    dry = runner.invoke(args=["gc", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith("gc dry run at ")
    assert "abandoned temporary uploads    not inspected in a dry run" in dry.output
    assert "would free" in dry.output and " freed " not in dry.output

    result = runner.invoke(args=["gc"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("gc run at ")
    assert lines[1:] == [
        "  expired upload reservations           1  freed 40 bytes",
        "  deleted or expired artifacts          2  freed 0 bytes",
        f"  unreferenced blobs                    1  freed {len(OTHER)} bytes",
        "  cache entries past retention          1  freed 60 bytes",
        "  cache entries over size cap           1  freed 100 bytes",
        "  abandoned temporary uploads           1  freed 7 bytes",
        "  orphan objects                        1  freed 5 bytes",
        "  old idempotency keys and events        0  freed 0 bytes",
        f"  total                                 8  freed {40 + len(OTHER) + 172} bytes",
    ]


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (0, "0 bytes"),
        (1023, "1,023 bytes"),
        (1536, "1,536 bytes (1.5 KiB)"),
        (5 * 2**30, "5,368,709,120 bytes (5.0 GiB)"),
    ],
)
def test_sizes_are_exact_with_a_readable_unit(count, shown):
    assert cli._bytes(count) == shown


def test_flask_gc_interval_runs_until_stopped_and_survives_a_failed_run(runner, monkeypatch):
    class Stop(Exception):
        pass

    sleeps = []
    outcomes = iter([RuntimeError("database went away"), None, None])
    real_collect = gc.collect

    def flaky_collect(**kwargs):
        if (failure := next(outcomes)) is not None:
            raise failure
        return real_collect(**kwargs)

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise Stop()

    monkeypatch.setattr(gc, "collect", flaky_collect)
    monkeypatch.setattr(cli, "sleep", sleep)

    result = runner.invoke(args=["gc", "--interval", "5"])

    assert isinstance(result.exception, Stop)
    assert sleeps == [5, 5, 5]
    assert result.output.count("gc run at ") == 2


def test_flask_gc_once_fails_loudly(runner, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(gc, "collect", broken)
    result = runner.invoke(args=["gc"])
    assert result.exit_code != 0 and isinstance(result.exception, RuntimeError)


# ---------------------------------------------------------------- gc racing an upload


def _gc_in_its_own_context(app, results: list) -> threading.Thread:
    """gc with no grace, so that a deleted artifact goes at once. (Moving the
    clock instead would make the upload's own fresh object look old enough
    for the orphan sweep.) Its report, or its exception, lands in `results`."""

    def run():
        try:
            with app.app_context():
                results.append(gc.collect(now=clock.now(), artifact_grace=timedelta(0)))
        except Exception as exc:
            results.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("gc_runs", ["before_the_lookup", "after_the_lookup"])
def test_gc_during_an_upload_of_identical_bytes_never_loses_them(app, client, auth, monkeypatch, gc_runs):
    """A deleted artifact's blob is eligible just as an upload of the same
    bytes attaches to it (after the upload's first write). PostgreSQL: before
    the lookup, gc releases the blob and the upload makes a new one from its
    own bytes; after it, the upload's KEY SHARE lock makes gc skip the blob.
    SQLite: gc waits for the upload's write lock, then sees the reference."""
    delete(client, auth, upload(client, auth))
    postgres = db.engine.dialect.name == "postgresql"
    real_attach = uploads.attach_blob
    threads, results, waited = [], [], []

    def attach_while_gc_runs(tenant, stored):
        found = real_attach(tenant, stored) if gc_runs == "after_the_lookup" else None
        threads.append(_gc_in_its_own_context(app, results))
        threads[-1].join(timeout=1)
        waited.append(threads[-1].is_alive())
        return found or real_attach(tenant, stored)

    monkeypatch.setattr(uploads, "attach_blob", attach_while_gc_runs)
    artifact_id = upload(client, auth, ttl="never")
    threads[0].join()

    (report,) = results
    assert isinstance(report, gc.GcReport), report
    assert waited == [not postgres]
    assert report.artifacts.count == 1
    assert report.blobs.count == (1 if postgres and gc_runs == "before_the_lookup" else 0)
    assert download(client, auth, artifact_id) == DATA
    assert rows(Artifact) == 1
    (key,) = blob_keys()
    assert set(objects()) == {key}


def test_an_upload_that_found_a_blob_gc_then_released_retries_with_its_own_bytes(
    app, client, auth, monkeypatch
):
    """The foreign key turns a stale lookup into an IntegrityError; the retry
    makes a new blob from the upload's own object, which it kept."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's lookup runs under the write lock: it cannot be stale")
    delete(client, auth, upload(client, auth))
    (old_key,) = blob_keys()
    real_attach = uploads.attach_blob
    results, lookups = [], []

    def stale_once(tenant, stored):
        lookups.append(stored.key)
        if len(lookups) > 1:
            return real_attach(tenant, stored)
        stale = db.session.scalar(select(Blob).where(Blob.content_hash == stored.sha256))
        _gc_in_its_own_context(app, results).join()
        return stale, True

    monkeypatch.setattr(uploads, "attach_blob", stale_once)
    artifact_id = upload(client, auth, ttl="never")

    (report,) = results
    assert (report.artifacts.count, report.blobs.count) == (1, 1)
    assert len(lookups) == 2
    (new_key,) = blob_keys()
    assert new_key == lookups[0] != old_key and not exists(old_key)
    assert download(client, auth, artifact_id) == DATA
    assert set(objects()) == {new_key}


# ---------------------------------------------------------------- S3


@pytest.fixture
def s3_bucket(app, make_bucket, moto_server, monkeypatch):
    """The app on S3 (moto): its own bucket on the postgresql-s3 variant,
    else a fresh one for this test."""
    if app.config["STORAGE_BACKEND"] == "s3":
        yield app.config["S3_BUCKET"]
        return
    bucket = make_bucket()
    for name, value in {
        "STORAGE_BACKEND": "s3",
        "S3_BUCKET": bucket,
        "S3_ENDPOINT_URL": moto_server,
        "S3_REGION": "us-east-1",
    }.items():
        monkeypatch.setitem(app.config, name, value)
    app.extensions["hoard_storage"] = None
    yield bucket
    app.extensions["hoard_storage"] = None


def test_s3_abandoned_multipart_uploads_are_aborted(s3_bucket, s3_client):
    started = s3_client.create_multipart_upload(Bucket=s3_bucket, Key="blobs/t/crashed")
    s3_client.upload_part(
        Bucket=s3_bucket, Key="blobs/t/crashed", UploadId=started["UploadId"], PartNumber=1, Body=b"x" * 4096
    )  # moto dates every upload in 2010: old to any sweep

    report = run_gc()

    assert tally(report.abandoned_uploads) == (1, 4096)
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_s3_orphans_go_and_referenced_objects_stay(s3_bucket, s3_client, client, auth, tenant_and_key):
    tenant = tenant_and_key[0]
    live = upload(client, auth, ttl="never")
    cache_put(client, auth, "aaaa", b"cached")
    referenced = set(objects())
    orphan = f"blobs/{tenant.id}/orphan"
    lease = leases.acquire(orphan)
    s3_client.put_object(Bucket=s3_bucket, Key=orphan, Body=b"o" * 9)

    assert tally(run_gc().orphans) == (0, 0)  # its writer is alive
    leases.release(lease)  # and then gives up
    report = run_gc()

    assert tally(report.orphans) == (1, 9)
    assert set(objects()) == referenced
    assert download(client, auth, live) == DATA
    assert cache_get(client, auth, "aaaa") == 200


def test_s3_purged_artifact_takes_its_blob_object(s3_bucket, client, auth):
    delete(client, auth, upload(client, auth))
    (key,) = blob_keys()
    assert exists(key)
    clock.advance(31 * DAY)

    report = run_gc()

    assert tally(report.blobs) == (1, len(DATA))
    assert objects() == {}


def test_records_past_their_window_are_purged(app, client, auth, tenant_and_key):
    """Idempotency keys after 24 h and cache events after 90 days; newer ones stay."""
    from app.models import CacheEvent

    tenant = tenant_and_key[0]
    current = clock.now()
    for hours in (1, 23, 25):
        response = client.post(
            "/v1/artifacts",
            json={"filename": f"f{hours}.txt", "content": base64.b64encode(b"x").decode()},
            headers={**auth, "Idempotency-Key": f"k{hours}"},
        )
        assert response.status_code in (200, 201)
        record = db.session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.key == f"k{hours}"))
        record.created_at = current - timedelta(hours=hours)
        db.session.commit()  # SQLite: release the write lock before the next request
    db.session.add_all(
        CacheEvent(
            tenant_id=tenant.id,
            session_id="00000000-0000-0000-0000-000000000000",
            source="REMOTE",
            event="HIT",
            hash=f"h{days}",
            created_at=current - timedelta(days=days),
        )
        for days in (1, 89, 91, 400)
    )
    db.session.commit()

    dry = gc.purge_records(now=current, dry_run=True)
    assert dry.count == 3
    assert db.session.scalar(select(func.count()).select_from(CacheEvent)) == 4

    done = gc.purge_records(now=current)
    assert done.count == 3
    assert sorted(db.session.scalars(select(CacheEvent.hash))) == ["h1", "h89"]
    assert sorted(db.session.scalars(select(IdempotencyRecord.key))) == ["k1", "k23"]
