"""The console's sign-in: an API key signs a person in, and every request of
the session checks that the key is still active."""

from dataclasses import dataclass

from sqlalchemy import bindparam, select

from ..auth import KEY_PATTERN, key_digest
from ..errors import Unauthorized
from ..extensions import db
from ..models import ApiKey, Tenant
from .tenants import ADMIN

# Every console request runs this; built once, like auth's lookup.
ACTIVE_KEY_BY_ID = (
    select(ApiKey.id, ApiKey.role, ApiKey.last_4, ApiKey.digest, Tenant)
    .join(Tenant, Tenant.id == ApiKey.tenant_id)
    .where(ApiKey.id == bindparam("key_id"), ApiKey.revoked_at.is_(None))
)
ACTIVE_KEY_BY_DIGEST = select(ApiKey.id).where(
    ApiKey.digest == bindparam("digest"), ApiKey.revoked_at.is_(None)
)


@dataclass(frozen=True)
class ConsoleUser:
    """Who a console session speaks for: one key of one tenant."""

    key_id: int
    role: str
    key_last_4: str
    key_digest: str
    tenant: Tenant

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


def sign_in(key: str) -> int:
    """The id of the active key `key`; Unauthorized for anything else."""
    key = key.strip()
    key_id = None
    if KEY_PATTERN.match(key):
        key_id = db.session.scalar(ACTIVE_KEY_BY_DIGEST, {"digest": key_digest(key)})
    if key_id is None:
        raise Unauthorized("That API key is not valid, or it was revoked.")
    return key_id


def session_user(key_id: int) -> ConsoleUser | None:
    """The session's key and tenant while the key is active, else None."""
    row = db.session.execute(ACTIVE_KEY_BY_ID, {"key_id": key_id}).first()
    if row is None:
        return None
    return ConsoleUser(key_id=row[0], role=row[1], key_last_4=row[2], key_digest=row[3], tenant=row[4])
