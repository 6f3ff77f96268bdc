"""Reading artifacts: by id within a tenant, through a signed download URL
(one, or a batch of them), and as a page of a listing."""

import re
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import exists, select

from ... import signing
from ...clock import now
from ...errors import (
    ApiError,
    ArtifactAlreadyDeleted,
    ArtifactExpired,
    ArtifactNotFound,
    InvalidRequest,
    InvalidSignature,
    UploadNotFound,
    UrlExpired,
)
from ...extensions import db
from ...models import Artifact, ArtifactMeta, Tenant
from ...storage import ObjectNotFound
from .. import cursors, downloads
from ..downloads import Download

ARTIFACT_ID = re.compile(r"^art_[A-Za-z0-9]{16}$")
# Artifacta's announced limit for POST /v1/artifacts/batch/download-urls.
MAX_BATCH_IDS = 20


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
    if artifact.expired_at(now()):
        raise ArtifactExpired()
    return artifact


def ensure_downloadable(artifact: Artifact) -> Artifact:
    ensure_live(artifact)
    if artifact.status != "active" or artifact.blob is None:
        raise UploadNotFound("the artifact's bytes have not been uploaded")
    return artifact


def get_artifact(tenant: Tenant, artifact_id: str) -> Artifact:
    return ensure_live(find_artifact(tenant, artifact_id))


def downloadable_artifact(tenant: Tenant, artifact_id: str) -> Artifact:
    """The tenant's artifact while its bytes may be read (the console's download)."""
    return ensure_downloadable(find_artifact(tenant, artifact_id))


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
    return _download_ticket(tenant, ensure_downloadable(find_artifact(tenant, artifact_id)), base_url)


def _download_ticket(tenant: Tenant, artifact: Artifact, base_url: str) -> DownloadTicket:
    expires_in = current_app.config["SIGNED_URL_TTL_SECONDS"]
    token = signing.sign("blob", {"t": tenant.id, "a": artifact.id}, expires_in=expires_in)
    return DownloadTicket(artifact=artifact, url=f"{base_url}/v1/blobs/{token}", expires_in=expires_in)


@dataclass
class BatchEntry:
    """One id of a batch: its ticket, or the error download_url gives it."""

    artifact_id: str
    ticket: DownloadTicket | None = None
    error: ApiError | None = None


def download_urls(tenant: Tenant, artifact_ids: list[str], *, base_url: str) -> list[BatchEntry]:
    """download_url for each of up to MAX_BATCH_IDS distinct ids, in the order
    asked, with one SELECT for the whole batch. Each id gets the ticket or the
    error download_url would give it alone, except that a pending artifact is
    invalid_request (artifacts-v1.md): one bad id never fails the rest."""
    wanted = [artifact_id for artifact_id in artifact_ids if is_artifact_id(artifact_id)]
    found: dict[str, Artifact] = {}
    if wanted:
        query = select(Artifact).where(Artifact.tenant_id == tenant.id, Artifact.id.in_(wanted))
        found = {artifact.id: artifact for artifact in db.session.scalars(query)}
    entries = []
    for artifact_id in artifact_ids:
        try:
            artifact = found.get(artifact_id)
            if artifact is None:
                raise ArtifactNotFound()
            ticket = _download_ticket(tenant, ensure_downloadable(artifact), base_url)
            entries.append(BatchEntry(artifact_id, ticket=ticket))
        except UploadNotFound:
            # The batch contract names this one code apart from download-url's.
            pending = InvalidRequest("the artifact is pending: its upload has not been completed")
            entries.append(BatchEntry(artifact_id, error=pending))
        except ApiError as error:
            entries.append(BatchEntry(artifact_id, error=error))
    return entries


def artifact_for_download_token(token: str) -> Artifact:
    """The artifact a signed download URL names, while it may still be read."""
    payload = verify_token(token, "blob")
    artifact = db.session.scalar(
        select(Artifact).where(Artifact.tenant_id == payload.get("t"), Artifact.id == payload.get("a"))
    )
    if artifact is None:
        raise ArtifactNotFound()
    return ensure_downloadable(artifact)


def verify_token(token: str, purpose: str) -> dict:
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
    query = select(Artifact).where(Artifact.tenant_id == tenant.id, Artifact.live_at(now()))
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
    return cursors.page(query, at=Artifact.created_at, key=Artifact.id, after=after, limit=limit)
