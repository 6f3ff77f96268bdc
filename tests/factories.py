"""Factories for test data, made through the services (no HTTP), so that a
service's rules can be tested on their own. Each needs an app context."""

import io
from datetime import timedelta

from app.extensions import db
from app.models import Artifact, CacheEntry, Tenant
from app.services import cache, tenants
from app.services.artifacts import uploads
from app.services.validation import ArtifactFields


def make_tenant(slug: str = "acme", *, plan: str = "pro") -> tuple[Tenant, str]:
    """A tenant and one plaintext API key for it."""
    tenant = tenants.create_tenant(slug, plan=plan)
    return tenant, make_key(tenant)


def make_key(tenant: Tenant) -> str:
    """Another plaintext API key for the tenant."""
    _, key = tenants.create_key(tenant)
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_artifact(
    tenant: Tenant,
    data: bytes = b"hello",
    *,
    filename: str = "hello.txt",
    content_type: str = "text/plain",
    ttl: timedelta | None = timedelta(days=30),
    **fields,
) -> Artifact:
    """An active /v1 artifact holding `data` (fields: session_id, agent_id, metadata)."""
    artifact, _ = uploads.create_artifact(
        tenant,
        body=io.BytesIO(data),
        size_hint=len(data),
        max_size=max(len(data), 1),
        fields=ArtifactFields(filename=filename, content_type=content_type, ttl=ttl, **fields),
        idempotency_key=None,
    )
    return artifact


def make_cache_entry(
    tenant: Tenant, artifact_hash: str = "0123456789abcdef", data: bytes = b"archive", **headers
) -> CacheEntry:
    """A build cache entry holding `data` (headers: duration_ms, tag, git_sha...)."""
    cache.put_entry(
        tenant,
        artifact_hash,
        io.BytesIO(data),
        content_length=len(data),
        headers=cache.EntryHeaders(**headers),
    )
    return db.session.get(CacheEntry, (tenant.id, artifact_hash))
