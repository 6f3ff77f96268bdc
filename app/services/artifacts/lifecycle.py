"""An artifact's lifecycle after upload: deletion and its TTL."""

from ...clock import now
from ...errors import ArtifactAlreadyDeleted
from ...extensions import db
from ...models import Artifact, Tenant
from .. import validation
from ..plans import plan_for
from . import reads


def delete_artifact(tenant: Tenant, artifact_id: str) -> Artifact:
    """Soft delete: gone from listings and URLs at once; bytes go with gc."""
    artifact = reads.find_artifact(tenant, artifact_id, for_update=True)
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
    artifact = reads.find_artifact(tenant, artifact_id, for_update=True)
    reads.ensure_live(artifact)
    if new_expiry is None:
        artifact.expires_at = None
    elif artifact.expires_at is not None:
        artifact.expires_at = max(artifact.expires_at, new_expiry)
    db.session.commit()
    return artifact
