"""Direct uploads (multipart and base64), and what presigned ones share with
them: a new artifact row, storing a body under a lease, the quota, and
attaching the bytes to the tenant's blob.

Bytes are written to storage first, under a fresh key, while they are hashed;
the rows that make an artifact visible are committed only after the bytes are
durable. Identical bytes within a tenant share one blob row and object.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ... import metrics
from ...clock import now
from ...errors import Conflict, QuotaExceeded, refused_body
from ...extensions import db
from ...models import Artifact, ArtifactMeta, Blob, IdempotencyRecord, Tenant
from ...storage import BodyTooLarge, IncompleteBody, StoredObject, get_storage, keys
from .. import leases, sessions, usage, validation
from ..ids import random_id
from ..plans import plan_for, upgrade_offer

STALLED = "the upload stalled and was taken for dead; retry it"


def new_artifact_id() -> str:
    return random_id("art_", 16)


def create_artifact(
    tenant: Tenant,
    *,
    body: BinaryIO,
    size_hint: int | None,
    max_size: int,
    fields: validation.ArtifactFields,
    idempotency_key: str | None,
) -> tuple[Artifact, bool]:
    """Store the body and create its artifact; (artifact, created).

    A known Idempotency-Key within 24 h replays the original artifact and
    stores nothing.
    """
    if idempotency_key is not None and (original := _replay(tenant, idempotency_key)) is not None:
        return original, False
    sessions.ensure_open(tenant, fields.session_id)
    # Bytes a blob already holds cost nothing, and which blob is known only
    # once they are hashed: refuse early only a tenant already over quota,
    # and check the real addition when the blob row is attached.
    check_quota(tenant, 0)
    lease = leases.acquire(keys.blob_object(tenant.id))
    stored = store_body(lease, body, max_size=max_size, expected_size=size_hint)
    artifact = new_artifact(
        tenant, fields, size_bytes=stored.size, status="active", content_hash=stored.sha256
    )
    return _commit_new_artifact(tenant, artifact, stored, idempotency_key, lease)


def new_artifact(
    tenant: Tenant, fields: validation.ArtifactFields, *, size_bytes: int, status: str, **columns
) -> Artifact:
    created = now()
    return Artifact(
        id=new_artifact_id(),
        tenant_id=tenant.id,
        filename=fields.filename,
        content_type=fields.content_type,
        size_bytes=size_bytes,
        session_id=fields.session_id,
        agent_id=fields.agent_id,
        metadata_json=fields.metadata,
        status=status,
        created_at=created,
        expires_at=fields.expires_after(created),
        **columns,
    )


def store_body(
    lease: leases.Lease, body: BinaryIO, *, max_size: int, expected_size: int | None, sha256: bool = True
) -> StoredObject:
    """Stream the body to the leased key, renewing the lease as it flows; the
    lease ends if the body fails (put_stream leaves nothing behind)."""
    try:
        stored = get_storage().put_stream(
            lease.key,
            leases.Heartbeat(body, lease),
            max_size=max_size,
            expected_size=expected_size,
            sha256=sha256,
        )
    except (BodyTooLarge, IncompleteBody) as exc:
        leases.release(lease)
        raise refused_body(exc, what="the file") from None
    except leases.LeaseLost:
        raise Conflict(STALLED) from None
    except BaseException:
        leases.release(lease)
        raise
    metrics.bytes_uploaded(stored.size)
    return stored


def check_quota(tenant: Tenant, adding: int) -> None:
    if usage.over_storage_quota(tenant, adding=adding):
        plan = plan_for(tenant.plan)
        offer = upgrade_offer(plan, lambda other: other.storage_limit_bytes > plan.storage_limit_bytes)
        raise QuotaExceeded("the storage quota would be exceeded", **offer)


def _replay(tenant: Tenant, key: str) -> Artifact | None:
    record = db.session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.tenant_id == tenant.id, IdempotencyRecord.key == key
        )
    )
    if record is None:
        return None
    if now() - record.created_at >= IdempotencyRecord.REPLAY_WINDOW:
        db.session.delete(record)
        db.session.commit()
        return None
    return db.session.get(Artifact, record.artifact_id)


def attach_blob(tenant: Tenant, stored: StoredObject) -> tuple[Blob, bool]:
    """The tenant's blob for these bytes, and whether it already existed.

    Call it after the transaction's first write: gc (services/gc.py) then
    cannot release the blob found before the caller commits. PostgreSQL holds
    it by the FOR KEY SHARE lock; SQLite has no row locks, but its write lock,
    taken by that first write, makes this lookup and the commit one step.
    """
    blob = _existing_blob(tenant, stored.sha256)
    if blob is not None:
        return blob, True
    blob = Blob(
        tenant_id=tenant.id, content_hash=stored.sha256, size_bytes=stored.size, storage_key=stored.key
    )
    try:
        with db.session.begin_nested():
            db.session.add(blob)
    except IntegrityError:
        # A concurrent upload of the same bytes created the blob first: share it.
        existing = _existing_blob(tenant, stored.sha256)
        if existing is None:
            raise
        return existing, True
    return blob, False


def _existing_blob(tenant: Tenant, content_hash: str) -> Blob | None:
    return db.session.scalar(
        select(Blob)
        .where(Blob.tenant_id == tenant.id, Blob.content_hash == content_hash)
        .with_for_update(read=True, key_share=True)
    )


def _commit_new_artifact(
    tenant: Tenant,
    artifact: Artifact,
    stored: StoredObject,
    idempotency_key: str | None,
    lease: leases.Lease,
) -> tuple[Artifact, bool]:
    store = get_storage()
    metadata = dict(artifact.metadata_json or {})
    for _ in range(5):
        try:
            with claiming(lease, stalled=STALLED, retried=(IntegrityError,)):
                session_row = sessions.lock_for_upload(tenant, artifact.session_id)
                artifact.blob_id = None  # not a failed attempt's: the first write, before attach_blob
                db.session.add(artifact)
                db.session.flush()
                blob, shared = attach_blob(tenant, stored)
                if not shared:
                    check_quota(tenant, 0)  # the new blob row is already counted
                artifact.blob_id = blob.id
                db.session.add_all(
                    ArtifactMeta(artifact_id=artifact.id, tenant_id=tenant.id, key=key, value=value)
                    for key, value in metadata.items()
                )
                if idempotency_key is not None:
                    db.session.add(
                        IdempotencyRecord(tenant_id=tenant.id, key=idempotency_key, artifact_id=artifact.id)
                    )
                sessions.count_artifact(tenant, artifact.session_id, session_row)
                leases.claim(lease)
                db.session.commit()
        except IntegrityError:
            # A concurrent upload created the same blob, session or idempotency
            # record first: look again (and replay, for the idempotency key).
            db.session.rollback()
            if idempotency_key is not None and (original := _replay(tenant, idempotency_key)) is not None:
                abandon(lease)
                return original, False
            continue
        if shared:
            store.delete(stored.key)
        return artifact, True
    abandon(lease)
    raise Conflict("the upload conflicted with concurrent changes; retry it")


@contextmanager
def claiming(
    lease: leases.Lease, *, stalled: str, retried: tuple[type[Exception], ...] = ()
) -> Iterator[None]:
    """The transaction that makes the leased bytes a blob's. If it fails it
    rolls back and the bytes go; if gc took the upload for dead meanwhile
    (LeaseLost), a Conflict saying `stalled`. `retried` errors pass through
    untouched, the bytes kept for the caller's next attempt."""
    try:
        yield
    except retried:
        raise
    except leases.LeaseLost:
        db.session.rollback()
        get_storage().delete(lease.key)
        raise Conflict(stalled) from None
    except BaseException:
        db.session.rollback()
        abandon(lease)
        raise


def abandon(lease: leases.Lease) -> None:
    """Delete bytes no row will name, then end their lease."""
    get_storage().delete(lease.key)
    leases.release(lease)
