"""Presigned uploads: reserve (a pending artifact and the URL to PUT its bytes
to), receive (Hoard's own URL, with local storage) and complete (hash the
bytes that arrived and activate the artifact)."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO, NoReturn

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ... import signing
from ...clock import now
from ...errors import (
    Conflict,
    FileTooLarge,
    InvalidRequest,
    InvalidSignature,
    UploadAlreadyCompleted,
    UploadInProgress,
    UploadNotFound,
)
from ...extensions import db
from ...models import Artifact, ArtifactMeta, Tenant
from ...storage import ObjectNotFound, StoredObject, get_storage, keys
from ...storage.streams import CHUNK_SIZE, HashingReader
from .. import leases, sessions, validation
from . import reads, uploads


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
    uploads.check_quota(tenant, size_bytes)
    expires_in = current_app.config["UPLOAD_URL_TTL_SECONDS"]
    expires_at = now() + timedelta(seconds=expires_in)
    artifact = uploads.new_artifact(
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
        expires_in=expires_in,
        size=size_bytes,
        content_type=artifact.content_type,
    )
    if presigned is not None:
        url, headers = presigned.url, presigned.headers
    else:
        token = signing.sign("upload", {"t": tenant.id, "a": artifact.id}, expires_in=expires_in)
        url, headers = f"{base_url}/v1/uploads/{token}", {"Content-Type": artifact.content_type}
    return UploadTicket(
        artifact=artifact, url=url, headers=headers, expires_at=expires_at, expires_in=expires_in
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
    payload = reads.verify_token(token, "upload")
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
    stored = uploads.store_body(lease, body, max_size=size, expected_size=content_length, sha256=False)
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
    artifact = reads.ensure_live(reads.find_artifact(tenant, artifact_id, for_update=True))
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
        uploads.abandon(lease)
        raise
    if stored.size != artifact.size_bytes:  # the staging object was replaced meanwhile
        uploads.abandon(lease)
        _refuse_size(artifact, stored.size)
    artifact.content_hash = stored.sha256
    artifact.status = "active"
    artifact.upload_key = None
    artifact.upload_expires_at = None
    with uploads.claiming(lease, stalled="completing took too long and was taken for dead; retry it"):
        db.session.flush()  # the first write, before uploads.attach_blob
        blob, shared = uploads.attach_blob(tenant, stored)
        if not shared:
            # Reservations only check the room left when made: several may
            # each fit it. The new blob is counted by now.
            uploads.check_quota(tenant, 0)
        artifact.blob_id = blob.id
        leases.claim(lease)
        db.session.commit()
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
