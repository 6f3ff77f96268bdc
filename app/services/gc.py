"""Garbage collection: hard-deletes what the API has let go of.

Safe at any time, beside the server and beside another gc. Every unit of work
is one short transaction, and an object is deleted from storage only after
the rows that named it are committed away: a crash in between leaves an
unreferenced object (the orphan sweep's business), never a row that points at
missing bytes.

Races. A row is deleted only by a DELETE that repeats its own eligibility
condition, on rows first locked with FOR UPDATE SKIP LOCKED (PostgreSQL), so
gc never waits for a request and never deletes what a request is changing.
On SQLite, which has no row locks, each such DELETE is a single statement
under the database's one write lock, which is atomic just the same.

A blob may go only once no artifact references it. An upload attaching to an
existing blob holds it (artifacts/uploads.py attach_blob: FOR KEY SHARE on PostgreSQL,
and on SQLite a lookup made after the upload's first write, under the write
lock); gc's FOR UPDATE SKIP LOCKED passes over a held blob, and the DELETE's
NOT EXISTS runs in a statement that starts after gc's locks are taken, so it
sees every reference that committed before. The RESTRICT foreign key from
artifacts to blobs is the backstop on PostgreSQL.

Uploads in flight hold leases (services/leases.py) on the keys they write,
renewed while the bytes flow. gc first ends the leases of dead writers (no
heartbeat for a few intervals), then removes every partial upload and every
object that neither a row nor a remaining lease names, whatever its age.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, func, or_, select, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ColumnElement

from ..extensions import db
from ..models import (
    Artifact,
    ArtifactMeta,
    Blob,
    CacheEntry,
    CacheEvent,
    GcTotal,
    IdempotencyRecord,
    Link,
    Tenant,
    UploadLease,
)
from ..storage import ObjectNotFound, Storage, StorageError, get_storage
from . import leases

log = logging.getLogger(__name__)

# Deleted and expired artifacts stay restorable by an operator this long.
ARTIFACT_GRACE = timedelta(days=30)
BATCH = 200
# The orphan sweep reads a tenant's references once per this many listed keys.
LISTED_BATCH = 50_000
EVENT_RETENTION = timedelta(days=90)
# Top-level key prefixes (storage/keys.py) and how many parts their keys have:
# blobs/<tenant>/<random>, staging/<tenant>/<random> (presigned upload
# targets) and cache/<tenant>/<hash>/<version>. A key of any other shape is
# never touched.
OBJECT_LAYOUTS = {"blobs/": 3, "staging/": 3, "cache/": 4}

_NO_WRITE_SYNC = {"synchronize_session": False}


@dataclass
class Tally:
    """Items removed (or, in a dry run, that would be) and the bytes freed."""

    count: int = 0
    bytes: int = 0
    # Objects whose rows are gone but whose delete failed: the orphan sweep
    # of a later run collects them.
    failed: int = 0


@dataclass
class GcReport:
    dry_run: bool
    reservations: Tally = field(default_factory=Tally)
    artifacts: Tally = field(default_factory=Tally)
    blobs: Tally = field(default_factory=Tally)
    cache_expired: Tally = field(default_factory=Tally)
    cache_over_cap: Tally = field(default_factory=Tally)
    # None when not inspected: storage can only sweep them, not list them.
    abandoned_uploads: Tally | None = None
    orphans: Tally = field(default_factory=Tally)
    records: Tally = field(default_factory=Tally)

    def categories(self) -> list[tuple[str, Tally | None]]:
        return [
            ("reservations", self.reservations),
            ("artifacts", self.artifacts),
            ("blobs", self.blobs),
            ("cache_expired", self.cache_expired),
            ("cache_over_cap", self.cache_over_cap),
            ("abandoned_uploads", self.abandoned_uploads),
            ("orphans", self.orphans),
            ("records", self.records),
        ]

    @property
    def total(self) -> Tally:
        tallies = [tally for _, tally in self.categories() if tally is not None]
        return Tally(
            count=sum(t.count for t in tallies),
            bytes=sum(t.bytes for t in tallies),
            failed=sum(t.failed for t in tallies),
        )


def collect(
    *,
    now: datetime,
    dry_run: bool = False,
    artifact_grace: timedelta = ARTIFACT_GRACE,
) -> GcReport:
    """Run every collection in order and report what each freed.

    Rows go before the objects they free, and the orphan sweep comes last so
    that it sees only what the earlier steps did not account for. A dry run
    reports the same figures and deletes nothing (abandoned temporary uploads
    cannot be listed, so they are not inspected).
    """
    report = GcReport(dry_run=dry_run)
    if not dry_run:
        leases.end_dead(now)
    report.reservations = purge_reservations(now=now, dry_run=dry_run)
    report.artifacts = purge_artifacts(now=now, grace=artifact_grace, dry_run=dry_run)
    report.blobs = release_blobs(now=now, grace=artifact_grace, dry_run=dry_run)
    report.cache_expired, report.cache_over_cap = evict_cache(now=now, dry_run=dry_run)
    if not dry_run:
        report.abandoned_uploads = sweep_abandoned_uploads()
    report.orphans = sweep_orphans(now=now, dry_run=dry_run)
    report.records = purge_records(now=now, dry_run=dry_run)
    if not dry_run:
        record_run(report, now=now)
    return report


def record_run(report: GcReport, *, now: datetime) -> None:
    """Add a run's tallies to gc_totals, which /metrics exports.

    In the database rather than in the process's metrics: gc usually runs as
    a process of its own (Procfile's worker, a cron job), possibly on another
    machine, and its counts must reach every server's /metrics and outlive
    all of them. Concurrent runs each add theirs: a missing row is inserted
    first (a run that loses that race finds it made), then added to.
    """
    tallies = [(category, tally) for category, tally in report.categories() if tally is not None]
    present = set(db.session.scalars(select(GcTotal.category)))
    for category, _ in tallies:
        if category not in present:
            db.session.add(GcTotal(category=category, runs=0, objects=0, bytes=0))
            try:
                db.session.commit()
            except IntegrityError:
                db.session.rollback()
    for category, tally in tallies:
        db.session.execute(
            update(GcTotal)
            .where(GcTotal.category == category)
            .values(
                runs=GcTotal.runs + 1,
                objects=GcTotal.objects + tally.count,
                bytes=GcTotal.bytes + tally.bytes,
                last_run_at=now,
            ),
            execution_options=_NO_WRITE_SYNC,
        )
    db.session.commit()


# -- records -------------------------------------------------------------------


def purge_records(*, now: datetime, dry_run: bool = False) -> Tally:
    """Rows that only age: idempotency keys past their replay window, and
    cache events past EVENT_RETENTION (the hit-rate figures look back that far)."""
    tally = Tally()
    for model, cutoff in (
        (IdempotencyRecord, now - IdempotencyRecord.REPLAY_WINDOW),
        (CacheEvent, now - EVENT_RETENTION),
    ):
        condition = model.created_at < cutoff
        if dry_run:
            tally.count += db.session.scalar(select(func.count()).select_from(model).where(condition))
            continue
        tally.count += db.session.execute(
            delete(model).where(condition).execution_options(**_NO_WRITE_SYNC)
        ).rowcount
        db.session.commit()
    return tally


# -- artifacts -----------------------------------------------------------------


def _expired_reservation(now: datetime) -> ColumnElement[bool]:
    return and_(Artifact.status == "pending", Artifact.upload_expires_at < now)


def _purgeable(now: datetime, cutoff: datetime) -> ColumnElement[bool]:
    """Deleted or expired before the cutoff, and not an expired reservation
    (purge_reservations owns those, so no row is counted twice)."""
    return and_(
        or_(Artifact.deleted_at < cutoff, Artifact.expires_at < cutoff),
        or_(
            Artifact.status != "pending",
            Artifact.upload_expires_at.is_(None),
            Artifact.upload_expires_at >= now,
        ),
    )


def _kept(cutoff: datetime) -> ColumnElement[bool]:
    """The negation of the deleted/expired half of _purgeable, NULL-safe."""
    return and_(
        or_(Artifact.deleted_at.is_(None), Artifact.deleted_at >= cutoff),
        or_(Artifact.expires_at.is_(None), Artifact.expires_at >= cutoff),
    )


def purge_reservations(*, now: datetime, dry_run: bool = False) -> Tally:
    """Pending artifacts whose upload URL expired, with any bytes that arrived."""
    return _purge_artifacts(_expired_reservation(now), dry_run=dry_run)


def purge_artifacts(*, now: datetime, grace: timedelta = ARTIFACT_GRACE, dry_run: bool = False) -> Tally:
    """Artifacts deleted or expired more than `grace` ago: their rows, metadata,
    links and idempotency records. Their blobs go with release_blobs."""
    return _purge_artifacts(_purgeable(now, now - grace), dry_run=dry_run)


def _purge_artifacts(condition: ColumnElement[bool], *, dry_run: bool) -> Tally:
    store = get_storage()
    tally = Tally()
    after = ""
    while True:
        ids = list(
            db.session.scalars(
                select(Artifact.id).where(condition, Artifact.id > after).order_by(Artifact.id).limit(BATCH)
            )
        )
        if not ids:
            db.session.commit()
            return tally
        after = ids[-1]
        if dry_run:
            upload_keys = db.session.scalars(
                select(Artifact.upload_key).where(Artifact.id.in_(ids), Artifact.upload_key.is_not(None))
            ).all()
            db.session.commit()
            tally.count += len(ids)
            tally.bytes += sum(_size(store, key) for key in upload_keys)
            continue
        # Rows a request is changing right now (complete, extend-ttl) are
        # skipped, not waited for: the next run looks at them again.
        locked = db.session.scalars(
            select(Artifact.id)
            .where(Artifact.id.in_(ids), condition)
            .order_by(Artifact.id)
            .with_for_update(skip_locked=True)
        ).all()
        removed = []
        if locked:
            removed = db.session.execute(
                delete(Artifact)
                .where(Artifact.id.in_(locked), condition)
                .returning(Artifact.id, Artifact.upload_key),
                execution_options=_NO_WRITE_SYNC,
            ).all()
        gone = [row.id for row in removed]
        if gone:
            # PostgreSQL cascades these; SQLite does not enforce foreign keys.
            for model in (ArtifactMeta, Link, IdempotencyRecord):
                db.session.execute(
                    delete(model).where(model.artifact_id.in_(gone)), execution_options=_NO_WRITE_SYNC
                )
        db.session.commit()
        tally.count += len(gone)
        _delete_objects(store, [(row.upload_key, None) for row in removed if row.upload_key], tally)


def release_blobs(*, now: datetime, grace: timedelta = ARTIFACT_GRACE, dry_run: bool = False) -> Tally:
    """Blobs no artifact row references, and their bytes.

    A dry run counts the blobs whose every artifact purge_artifacts would
    remove, since it removed none.
    """
    referencing = exists().where(Artifact.blob_id == Blob.id)
    if dry_run:
        referencing = exists().where(Artifact.blob_id == Blob.id, _kept(now - grace))
    store = get_storage()
    tally = Tally()
    after = 0
    while True:
        rows = db.session.execute(
            select(Blob.id, Blob.size_bytes)
            .where(~referencing, Blob.id > after)
            .order_by(Blob.id)
            .limit(BATCH)
        ).all()
        if not rows:
            db.session.commit()
            return tally
        after = rows[-1].id
        if dry_run:
            db.session.commit()
            tally.count += len(rows)
            tally.bytes += sum(row.size_bytes for row in rows)
            continue
        ids = [row.id for row in rows]
        # An upload attaching to one of these holds it (FOR KEY SHARE): skip
        # it. The DELETE below starts after these locks are ours, so its NOT
        # EXISTS sees every reference committed before them.
        locked = db.session.scalars(
            select(Blob.id).where(Blob.id.in_(ids)).order_by(Blob.id).with_for_update(skip_locked=True)
        ).all()
        released = []
        if locked:
            try:
                released = db.session.execute(
                    delete(Blob)
                    .where(Blob.id.in_(locked), ~exists().where(Artifact.blob_id == Blob.id))
                    .returning(Blob.storage_key, Blob.size_bytes),
                    execution_options=_NO_WRITE_SYNC,
                ).all()
                db.session.commit()
            except IntegrityError:
                # The foreign key caught a reference the locks did not: keep them all.
                db.session.rollback()
                log.warning("gc: blobs %s gained a reference while being released; kept", locked)
                continue
        else:
            db.session.commit()
        tally.count += len(released)
        _delete_objects(store, [(row.storage_key, row.size_bytes) for row in released], tally)


# -- build cache -----------------------------------------------------------------


def evict_cache(*, now: datetime, dry_run: bool = False) -> tuple[Tally, Tally]:
    """Per tenant: entries unread for its retention, then, under a size cap,
    the least recently read entries until the rest fit. (expired, over_cap)"""
    expired, over_cap = Tally(), Tally()
    tenants = db.session.execute(
        select(Tenant.id, Tenant.cache_retention_days, Tenant.cache_max_bytes).order_by(Tenant.id)
    ).all()
    db.session.commit()
    for tenant_id, retention_days, max_bytes in tenants:
        cutoff = now - timedelta(days=retention_days)
        _evict_unread(tenant_id, cutoff, expired, dry_run=dry_run)
        if max_bytes is not None:
            _evict_over_cap(tenant_id, cutoff, max_bytes, over_cap, dry_run=dry_run)
    return expired, over_cap


def _evict_unread(tenant_id: str, cutoff: datetime, tally: Tally, *, dry_run: bool) -> None:
    after = ""
    while True:
        rows = db.session.execute(
            select(CacheEntry.hash, CacheEntry.storage_key, CacheEntry.size_bytes)
            .where(
                CacheEntry.tenant_id == tenant_id,
                CacheEntry.last_read_at < cutoff,
                CacheEntry.hash > after,
            )
            .order_by(CacheEntry.hash)
            .limit(BATCH)
        ).all()
        db.session.commit()
        if not rows:
            return
        after = rows[-1].hash
        _evict(tenant_id, rows, CacheEntry.last_read_at < cutoff, tally, dry_run=dry_run)


def _evict_over_cap(tenant_id: str, cutoff: datetime, max_bytes: int, tally: Tally, *, dry_run: bool) -> None:
    # Entries past retention are gone already, or counted already in a dry run.
    current = CacheEntry.last_read_at >= cutoff
    total = db.session.scalar(
        select(func.coalesce(func.sum(CacheEntry.size_bytes), 0)).where(
            CacheEntry.tenant_id == tenant_id, current
        )
    )
    excess = int(total) - max_bytes
    victims = []
    last = None
    while excess > 0:
        query = select(
            CacheEntry.hash, CacheEntry.storage_key, CacheEntry.size_bytes, CacheEntry.last_read_at
        ).where(CacheEntry.tenant_id == tenant_id, current)
        if last is not None:
            query = query.where(
                or_(
                    CacheEntry.last_read_at > last.last_read_at,
                    and_(CacheEntry.last_read_at == last.last_read_at, CacheEntry.hash > last.hash),
                )
            )
        page = db.session.execute(query.order_by(CacheEntry.last_read_at, CacheEntry.hash).limit(BATCH)).all()
        if not page:
            break
        for row in page:
            if excess <= 0:
                break
            victims.append(row)
            excess -= row.size_bytes
        last = page[-1]
    db.session.commit()
    for start in range(0, len(victims), BATCH):
        batch = victims[start : start + BATCH]
        # An entry read since it was chosen has a newer last_read_at: kept.
        unread_since = CacheEntry.last_read_at <= max(row.last_read_at for row in batch)
        _evict(tenant_id, batch, unread_since, tally, dry_run=dry_run)


def _evict(tenant_id: str, rows: list, still_eligible: ColumnElement[bool], tally: Tally, *, dry_run: bool):
    """Delete these entries unless replaced (a new storage key) or no longer
    eligible since they were chosen; then their objects."""
    if dry_run:
        tally.count += len(rows)
        tally.bytes += sum(row.size_bytes for row in rows)
        return
    chosen = and_(
        CacheEntry.tenant_id == tenant_id,
        CacheEntry.hash.in_([row.hash for row in rows]),
        # Keys embed the hash, so this pairs each hash with the version chosen.
        CacheEntry.storage_key.in_([row.storage_key for row in rows]),
        still_eligible,
    )
    # A PUT replacing an entry holds its row: skipped, it is being refreshed.
    locked = db.session.scalars(
        select(CacheEntry.hash).where(chosen).order_by(CacheEntry.hash).with_for_update(skip_locked=True)
    ).all()
    removed = []
    if locked:
        removed = db.session.execute(
            delete(CacheEntry)
            .where(chosen, CacheEntry.hash.in_(locked))
            .returning(CacheEntry.storage_key, CacheEntry.size_bytes),
            execution_options=_NO_WRITE_SYNC,
        ).all()
    db.session.commit()
    tally.count += len(removed)
    _delete_objects(get_storage(), [(row.storage_key, row.size_bytes) for row in removed], tally)


# -- storage sweeps --------------------------------------------------------------


def sweep_abandoned_uploads() -> Tally:
    """Temporary files and S3 multipart uploads whose writer holds no lease:
    it died (collect ended its lease) or gave up."""
    count, freed = get_storage().sweep_abandoned(leases.held_keys)
    return Tally(count=count, bytes=freed)


def sweep_orphans(*, now: datetime, dry_run: bool = False) -> Tally:
    """Objects that no blob, cache entry, upload reservation or lease names.

    A writer leases its key before the object exists and ends the lease in
    the commit that makes a row name it. So references and leases read in
    one statement after an object was listed name it if anything alive
    does, and nothing can name it later. A dry run, which ends no lease,
    counts only live ones.
    """
    store = get_storage()
    tally = Tally()
    live_since = leases.dead_before(now) if dry_run else None
    for prefix, parts in OBJECT_LAYOUTS.items():
        tenant_id, listed = None, []
        for key, size, _ in store.iter_keys(prefix):
            segments = key.split("/")
            if len(segments) != parts:
                continue
            if listed and (segments[1] != tenant_id or len(listed) >= LISTED_BATCH):
                _sweep_listed(store, tenant_id, listed, tally, live_since=live_since, dry_run=dry_run)
                listed = []
            tenant_id = segments[1]
            listed.append((key, size))
        if listed:
            _sweep_listed(store, tenant_id, listed, tally, live_since=live_since, dry_run=dry_run)
    return tally


def _sweep_listed(
    store: Storage,
    tenant_id: str,
    listed: list[tuple[str, int]],
    tally: Tally,
    *,
    live_since: datetime | None,
    dry_run: bool,
) -> None:
    named = _named_keys(tenant_id, live_since)
    orphans = [(key, size) for key, size in listed if key not in named]
    if dry_run:
        tally.count += len(orphans)
        tally.bytes += sum(size for _, size in orphans)
    else:
        tally.count += _delete_objects(store, orphans, tally)


def _named_keys(tenant_id: str, live_since: datetime | None) -> set[str]:
    """Every key the tenant's rows or any lease name, read in one statement
    (one snapshot)."""
    held = select(UploadLease.key)
    if live_since is not None:
        held = held.where(UploadLease.heartbeat_at >= live_since)
    keys = set(
        db.session.scalars(
            union_all(
                select(Blob.storage_key).where(Blob.tenant_id == tenant_id),
                select(Artifact.upload_key).where(
                    Artifact.tenant_id == tenant_id, Artifact.upload_key.is_not(None)
                ),
                select(CacheEntry.storage_key).where(CacheEntry.tenant_id == tenant_id),
                held,
            )
        )
    )
    db.session.commit()
    return keys


# -- helpers ---------------------------------------------------------------------


def _size(store: Storage, key: str) -> int:
    try:
        return store.stat(key)
    except ObjectNotFound:
        return 0


def _delete_objects(store: Storage, objects: list[tuple[str, int | None]], tally: Tally) -> int:
    """Delete objects whose rows are committed away, adding the bytes freed to
    the tally; a None size is looked up. Returns how many went."""
    deleted = 0
    for key, size in objects:
        try:
            if size is None:
                size = _size(store, key)
            store.delete(key)
        except StorageError:
            log.warning("gc: could not delete %s; the orphan sweep will retry", key, exc_info=True)
            tally.failed += 1
            continue
        tally.bytes += size
        deleted += 1
    return deleted
