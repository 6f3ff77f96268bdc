"""Artifacts: uploads (direct and presigned), reads, listing, deletion, TTLs.

Bytes are written to storage first, under a fresh key, while they are hashed;
the rows that make an artifact visible are committed only after the bytes are
durable. Identical bytes within a tenant share one blob row and object.
"""

import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO, NoReturn

from flask import current_app
from sqlalchemy import exists, or_, select
from sqlalchemy.exc import IntegrityError

from .. import signing
from ..clock import now
from ..errors import (
    ArtifactAlreadyDeleted,
    ArtifactExpired,
    ArtifactNotFound,
    Conflict,
    FileTooLarge,
    InvalidRequest,
    InvalidSignature,
    QuotaExceeded,
    UploadAlreadyCompleted,
    UploadInProgress,
    UploadNotFound,
    UrlExpired,
)
from ..extensions import db
from ..models import Artifact, ArtifactMeta, Blob, IdempotencyRecord, Tenant
from ..storage import BodyTooLarge, IncompleteBody, ObjectNotFound, StoredObject, get_storage, keys
from ..storage.streams import CHUNK_SIZE, HashingReader
from . import cursors, downloads, leases, sessions, usage, validation
from .downloads import Download
from .plans import plan_for

ARTIFACT_ID = re.compile(r"^art_[A-Za-z0-9]{16}$")
IDEMPOTENCY_WINDOW = timedelta(hours=24)
UPLOAD_URL_SECONDS = 3600
UPGRADE_URL = validation.UPGRADE_URL
_ALNUM = string.ascii_letters + string.digits


def new_artifact_id() -> str:
    return "art_" + "".join(secrets.choice(_ALNUM) for _ in range(16))


# -- uploads ---------------------------------------------------------------


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
    _check_quota(tenant, 0)
    lease = leases.acquire(keys.blob_object(tenant.id))
    stored = _store(lease, body, max_size=max_size, expected_size=size_hint)
    artifact = _new_artifact(
        tenant, fields, size_bytes=stored.size, status="active", content_hash=stored.sha256
    )
    return _commit_new_artifact(tenant, artifact, stored, idempotency_key, lease)


def _new_artifact(
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


def _store(
    lease: leases.Lease, body: BinaryIO, *, max_size: int, expected_size: int | None, sha256: bool = True
) -> StoredObject:
    """Stream the body to the leased key, renewing the lease as it flows; the
    lease ends if the body fails (put_stream leaves nothing behind)."""
    try:
        return get_storage().put_stream(
            lease.key,
            leases.Heartbeat(body, lease),
            max_size=max_size,
            expected_size=expected_size,
            sha256=sha256,
        )
    except BodyTooLarge as exc:
        leases.release(lease)
        raise FileTooLarge(f"the file may be at most {exc.max_size} bytes") from None
    except IncompleteBody as exc:
        leases.release(lease)
        raise InvalidRequest(f"the body ended after {exc.received} of {exc.expected} bytes") from None
    except leases.LeaseLost:
        raise Conflict("the upload stalled and was taken for dead; retry it") from None
    except BaseException:
        leases.release(lease)
        raise


def _check_quota(tenant: Tenant, adding: int) -> None:
    if usage.over_storage_quota(tenant, adding=adding):
        extra = {"upgrade_url": UPGRADE_URL} if tenant.plan == "free" else {}
        raise QuotaExceeded("the storage quota would be exceeded", **extra)


def _replay(tenant: Tenant, key: str) -> Artifact | None:
    record = db.session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.tenant_id == tenant.id, IdempotencyRecord.key == key
        )
    )
    if record is None:
        return None
    if now() - record.created_at >= IDEMPOTENCY_WINDOW:
        db.session.delete(record)
        db.session.commit()
        return None
    return db.session.get(Artifact, record.artifact_id)


def _attach_blob(tenant: Tenant, stored: StoredObject) -> tuple[Blob, bool]:
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
            session_row = sessions.lock_for_upload(tenant, artifact.session_id)
            artifact.blob_id = None  # not a failed attempt's: the first write, before _attach_blob
            db.session.add(artifact)
            db.session.flush()
            blob, shared = _attach_blob(tenant, stored)
            if not shared:
                _check_quota(tenant, 0)  # the new blob row is already counted
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
                _abandon(lease)
                return original, False
            continue
        except leases.LeaseLost:
            db.session.rollback()
            store.delete(stored.key)
            raise Conflict("the upload stalled and was taken for dead; retry it") from None
        except BaseException:
            db.session.rollback()
            _abandon(lease)
            raise
        if shared:
            store.delete(stored.key)
        return artifact, True
    _abandon(lease)
    raise Conflict("the upload conflicted with concurrent changes; retry it")


def _abandon(lease: leases.Lease) -> None:
    """Delete bytes no row will name, then end their lease."""
    get_storage().delete(lease.key)
    leases.release(lease)


# -- presigned uploads -------------------------------------------------------


@dataclass
class UploadTicket:
    artifact: Artifact
    url: str
    headers: dict[str, str]
    expires_at: datetime
    expires_in: int


def reserve_upload(
    tenant: Tenant, *, fields: validation.ArtifactFields, size_bytes: int, base_url: str
) -> UploadTicket:
    """Create a pending artifact and the URL its bytes are to be PUT to."""
    max_size = current_app.config["PRESIGNED_MAX_BYTES"]
    if size_bytes > max_size:
        raise FileTooLarge(f"presigned uploads may be at most {max_size} bytes")
    sessions.ensure_open(tenant, fields.session_id)
    _check_quota(tenant, size_bytes)
    expires_at = now() + timedelta(seconds=UPLOAD_URL_SECONDS)
    artifact = _new_artifact(
        tenant,
        fields,
        size_bytes=size_bytes,
        status="pending",
        upload_key=keys.staging_object(tenant.id),
        upload_expires_at=expires_at,
    )
    for _ in range(3):
        try:
            session_row = sessions.lock_for_upload(tenant, artifact.session_id)
            db.session.add(artifact)
            db.session.add_all(
                ArtifactMeta(artifact_id=artifact.id, tenant_id=tenant.id, key=key, value=value)
                for key, value in fields.metadata.items()
            )
            sessions.count_artifact(tenant, artifact.session_id, session_row)
            db.session.commit()
            break
        except IntegrityError:
            db.session.rollback()
    else:
        raise Conflict("the reservation conflicted with concurrent changes; retry it")
    presigned = get_storage().presign_put(
        artifact.upload_key,
        expires_in=UPLOAD_URL_SECONDS,
        size=size_bytes,
        content_type=artifact.content_type,
    )
    if presigned is not None:
        url, headers = presigned.url, presigned.headers
    else:
        token = signing.sign("upload", {"t": tenant.id, "a": artifact.id}, expires_in=UPLOAD_URL_SECONDS)
        url, headers = f"{base_url}/v1/uploads/{token}", {"Content-Type": artifact.content_type}
    return UploadTicket(
        artifact=artifact, url=url, headers=headers, expires_at=expires_at, expires_in=UPLOAD_URL_SECONDS
    )


@dataclass
class UploadReceipt:
    artifact_id: str
    received_bytes: int


def receive_upload(token: str, body: BinaryIO, *, content_length: int | None) -> UploadReceipt:
    """Hoard's own presigned PUT (local storage): one at a time, once, and
    never after /complete, until the URL expires.

    The bytes land at the reservation's staging key. Nothing is hashed here:
    /complete hashes what it makes the blob, so whatever a PUT did, a blob's
    bytes match its hash.
    """
    payload = _verify(token, "upload")
    artifact = _reservation(payload)
    if content_length is not None and content_length != artifact.size_bytes:
        raise InvalidRequest(f"the body must be exactly {artifact.size_bytes} bytes")
    artifact_id, key, size = artifact.id, artifact.upload_key, artifact.size_bytes
    db.session.commit()  # no transaction stays open while the bytes stream
    try:
        lease = leases.acquire(key)
    except leases.LeaseHeld:
        raise UploadInProgress() from None
    # Looked at under the lease: a PUT that finished before it was taken
    # has left its bytes here.
    try:
        get_storage().stat(key)
    except ObjectNotFound:
        pass
    else:
        leases.release(lease)
        raise UploadAlreadyCompleted("the bytes for this upload were already received")
    stored = _store(lease, body, max_size=size, expected_size=content_length, sha256=False)
    leases.release(lease)  # the reservation names the key now
    # /complete may have run while the bytes streamed: they will never be read.
    _reservation(payload)
    db.session.commit()
    return UploadReceipt(artifact_id=artifact_id, received_bytes=stored.size)


def _reservation(payload: dict) -> Artifact:
    artifact = db.session.scalar(
        select(Artifact).where(Artifact.tenant_id == payload.get("t"), Artifact.id == payload.get("a"))
    )
    if artifact is None or artifact.deleted_at is not None:
        raise InvalidSignature("this upload URL is no longer valid")
    if artifact.status != "pending" or artifact.upload_key is None:
        raise UploadAlreadyCompleted()
    return artifact


def complete_upload(tenant: Tenant, artifact_id: str) -> Artifact:
    """Activate a reservation whose bytes arrived; completing twice is a no-op.

    The staging object may still be written (an S3 presigned URL lives its
    hour): it is copied to a fresh blob key that no URL names, and the copy,
    which nothing can change, is what is measured and hashed.
    """
    artifact = ensure_live(find_artifact(tenant, artifact_id, for_update=True))
    if artifact.status == "active":
        db.session.commit()
        return artifact
    store = get_storage()
    staging = artifact.upload_key
    try:
        size = store.stat(staging)
    except ObjectNotFound:
        db.session.commit()
        raise UploadNotFound("no bytes were uploaded for this artifact") from None
    if size != artifact.size_bytes:
        _refuse_size(artifact, size)
    lease = leases.acquire(keys.blob_object(tenant.id))
    try:
        store.copy(staging, lease.key)
        stored = _hash_object(lease)
    except BaseException:
        _abandon(lease)
        raise
    if stored.size != artifact.size_bytes:  # the staging object was replaced meanwhile
        _abandon(lease)
        _refuse_size(artifact, stored.size)
    artifact.content_hash = stored.sha256
    artifact.status = "active"
    artifact.upload_key = None
    artifact.upload_expires_at = None
    try:
        db.session.flush()  # the first write, before _attach_blob
        blob, shared = _attach_blob(tenant, stored)
        artifact.blob_id = blob.id
        leases.claim(lease)
        db.session.commit()
    except leases.LeaseLost:
        db.session.rollback()
        store.delete(lease.key)
        raise Conflict("completing took too long and was taken for dead; retry it") from None
    except BaseException:
        db.session.rollback()
        _abandon(lease)
        raise
    if shared:
        store.delete(stored.key)
    # Never read again; what a late PUT writes there is the orphan sweep's.
    store.delete(staging)
    return artifact


def _refuse_size(artifact: Artifact, size: int) -> NoReturn:
    staging, expected = artifact.upload_key, artifact.size_bytes
    db.session.commit()
    get_storage().delete(staging)  # lets the client PUT again while the URL is valid
    raise InvalidRequest(f"{size} bytes were uploaded, but size_bytes is {expected}")


def _hash_object(lease: leases.Lease) -> StoredObject:
    """Read the leased object back, renewing the lease; its size and SHA-256."""
    with get_storage().open_read(lease.key) as fh:
        reader = HashingReader(leases.Heartbeat(fh, lease), max_size=2**62)
        while reader.read(CHUNK_SIZE):
            pass
    return StoredObject(key=lease.key, size=reader.size, sha256=reader.sha256)


# -- reads -------------------------------------------------------------------


def find_artifact(tenant: Tenant, artifact_id: str, *, for_update: bool = False) -> Artifact:
    if not ARTIFACT_ID.match(artifact_id or ""):
        raise ArtifactNotFound()
    query = select(Artifact).where(Artifact.tenant_id == tenant.id, Artifact.id == artifact_id)
    if for_update:
        query = query.with_for_update(of=Artifact)
    artifact = db.session.scalar(query)
    if artifact is None:
        raise ArtifactNotFound()
    return artifact


def ensure_live(artifact: Artifact) -> Artifact:
    if artifact.deleted_at is not None:
        raise ArtifactAlreadyDeleted()
    if artifact.expires_at is not None and artifact.expires_at <= now():
        raise ArtifactExpired()
    return artifact


def ensure_downloadable(artifact: Artifact) -> Artifact:
    ensure_live(artifact)
    if artifact.status != "active" or artifact.blob is None:
        raise UploadNotFound("the artifact's bytes have not been uploaded")
    return artifact


def get_artifact(tenant: Tenant, artifact_id: str) -> Artifact:
    return ensure_live(find_artifact(tenant, artifact_id))


@dataclass
class DownloadTicket:
    artifact: Artifact
    url: str
    expires_in: int


def download_url(tenant: Tenant, artifact_id: str, *, base_url: str) -> DownloadTicket:
    """Hoard's own signed URL, which downloads the bytes with no auth until it
    expires and answers 410 from the moment the artifact is deleted.

    It is never the store's presigned URL, even with DOWNLOAD_MODE=redirect:
    that could not be revoked by DELETE. Each use is checked here and only then
    redirected, to a presigned GET that lives PRESIGNED_REDIRECT_SECONDS.
    """
    artifact = ensure_downloadable(find_artifact(tenant, artifact_id))
    expires_in = current_app.config["SIGNED_URL_TTL_SECONDS"]
    token = signing.sign("blob", {"t": tenant.id, "a": artifact.id}, expires_in=expires_in)
    return DownloadTicket(artifact=artifact, url=f"{base_url}/v1/blobs/{token}", expires_in=expires_in)


def artifact_for_download_token(token: str) -> Artifact:
    """The artifact a signed download URL names, while it may still be read."""
    payload = _verify(token, "blob")
    artifact = db.session.scalar(
        select(Artifact).where(Artifact.tenant_id == payload.get("t"), Artifact.id == payload.get("a"))
    )
    if artifact is None:
        raise ArtifactNotFound()
    return ensure_downloadable(artifact)


def _verify(token: str, purpose: str) -> dict:
    try:
        return signing.verify(purpose, token)
    except signing.ExpiredToken:
        raise UrlExpired() from None
    except signing.InvalidToken:
        raise InvalidSignature() from None


def open_download(artifact: Artifact, *, with_body: bool) -> Download:
    """The artifact's bytes ready to send: a stream, or a presigned redirect."""
    try:
        return downloads.open_download(
            artifact.blob.storage_key,
            artifact.blob.size_bytes,
            with_body=with_body,
            filename=artifact.filename,
            content_type=artifact.content_type,
        )
    except ObjectNotFound:
        raise ArtifactNotFound("the artifact's bytes are missing") from None


# -- listing -----------------------------------------------------------------


@dataclass
class ListFilters:
    session_id: str | None = None
    agent_id: str | None = None
    filename: str | None = None
    content_type: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    metadata: dict[str, str] | None = None


def is_artifact_id(value: str) -> bool:
    return bool(ARTIFACT_ID.match(value))


def list_artifacts(
    tenant: Tenant, *, filters: ListFilters, limit: int, after: cursors.Position | None
) -> cursors.Page:
    """One page in (created_at DESC, id DESC) order; live artifacts only."""
    current = now()
    query = select(Artifact).where(
        Artifact.tenant_id == tenant.id,
        Artifact.deleted_at.is_(None),
        or_(Artifact.expires_at.is_(None), Artifact.expires_at > current),
    )
    for column, value in (
        (Artifact.session_id, filters.session_id),
        (Artifact.agent_id, filters.agent_id),
        (Artifact.filename, filters.filename),
        (Artifact.content_type, filters.content_type),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.created_after is not None:
        query = query.where(Artifact.created_at > filters.created_after)
    if filters.created_before is not None:
        query = query.where(Artifact.created_at < filters.created_before)
    for key, value in (filters.metadata or {}).items():
        query = query.where(
            exists().where(
                ArtifactMeta.artifact_id == Artifact.id,
                ArtifactMeta.tenant_id == tenant.id,
                ArtifactMeta.key == key,
                ArtifactMeta.value == value,
            )
        )
    return cursors.page(
        query,
        at=Artifact.created_at,
        key=Artifact.id,
        after=after,
        limit=limit,
    )


# -- changes -----------------------------------------------------------------


def delete_artifact(tenant: Tenant, artifact_id: str) -> Artifact:
    """Soft delete: gone from listings and URLs at once; bytes go with gc."""
    artifact = find_artifact(tenant, artifact_id, for_update=True)
    if artifact.deleted_at is not None:
        db.session.commit()
        raise ArtifactAlreadyDeleted()
    artifact.deleted_at = now()
    db.session.flush()
    # The answer is built from these values after the commit, when gc may
    # already have purged an artifact that expired long ago.
    db.session.expunge(artifact)
    db.session.commit()
    return artifact


def extend_ttl(tenant: Tenant, artifact_id: str, ttl_seconds: int | None) -> Artifact:
    """expires_at becomes max(current, now + ttl), under the plan's limits
    (ttl_seconds None: never expires)."""
    lifetime = validation.lifetime(ttl_seconds, plan_for(tenant.plan))
    new_expiry = None if lifetime is None else now() + lifetime
    artifact = find_artifact(tenant, artifact_id, for_update=True)
    ensure_live(artifact)
    if new_expiry is None:
        artifact.expires_at = None
    elif artifact.expires_at is not None:
        artifact.expires_at = max(artifact.expires_at, new_expiry)
    db.session.commit()
    return artifact
