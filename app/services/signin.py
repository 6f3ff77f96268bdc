"""The console's sign-in: an API key signs a person in, and every request of
the session checks that the key is still active."""

from dataclasses import dataclass
from datetime import UTC

from sqlalchemy import bindparam, select, update

from ..auth import KEY_PATTERN, key_digest
from ..clock import now
from ..errors import Unauthorized
from ..extensions import db
from ..models import ApiKey, Tenant
from .tenants import ADMIN

# Every console request runs this; built once, like auth's lookup.
ACTIVE_KEY_BY_ID = (
    select(ApiKey.id, ApiKey.role, ApiKey.last_4, ApiKey.digest, ApiKey.console_signed_out_at, Tenant)
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


def session_user(key_id: int, *, signed_in_at: float) -> ConsoleUser | None:
    """The session's key and tenant while the key is active and has not
    signed out since `signed_in_at` (Unix seconds), else None."""
    row = db.session.execute(ACTIVE_KEY_BY_ID, {"key_id": key_id}).first()
    if row is None:
        return None
    key_id, role, last_4, digest, signed_out_at, tenant = row
    if signed_out_at is not None and signed_in_at <= signed_out_at.replace(tzinfo=UTC).timestamp():
        return None
    return ConsoleUser(key_id=key_id, role=role, key_last_4=last_4, key_digest=digest, tenant=tenant)


def sign_out(key_id: int) -> None:
    """End every console session the key began until now: a copied cookie
    dies with the sign-out, not hours later when it expires."""
    db.session.execute(update(ApiKey).where(ApiKey.id == key_id).values(console_signed_out_at=now()))
    db.session.commit()


def signed_in_now() -> float:
    """When a session begins, in the Unix seconds session_user compares."""
    return now().replace(tzinfo=UTC).timestamp()
