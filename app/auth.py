"""API key → tenant, resolved once per request and cached on `g`.

A key comes as `Authorization: Bearer <key>`, or as the password of HTTP
basic credentials (any user name) for the build tools that can only send
those (Gradle, URL userinfo).
"""

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from flask import g, request
from sqlalchemy import bindparam, select

from .errors import Unauthorized
from .extensions import db
from .models import ApiKey, Tenant

KEY_PATTERN = re.compile(r"^ak_live_[A-Za-z0-9]{32}$")

# Every request runs this query. Built once: building a select and deriving
# its cache key cost more CPU than PostgreSQL spends answering it.
PRINCIPAL_BY_DIGEST = (
    select(Tenant, ApiKey.last_4)
    .join(ApiKey, ApiKey.tenant_id == Tenant.id)
    .where(ApiKey.digest == bindparam("digest"), ApiKey.revoked_at.is_(None))
)


@dataclass(frozen=True)
class Principal:
    tenant: Tenant
    # Read at lookup: a commit or rollback expires `tenant`, and reading its id
    # afterwards (rate limit key, request counter) would load the row again.
    tenant_id: str
    key_last_4: str


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def bearer_key(header: str | None) -> str | None:
    """The API key of an `Authorization: Bearer <key>` header, or None when
    the header is missing or holds no well-formed key."""
    scheme, _, key = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    key = key.strip()
    return key if KEY_PATTERN.match(key) else None


def presented_key(header: str | None) -> str | None:
    """The API key of a Bearer header or of basic credentials' password, or
    None when the header is missing or holds no well-formed key."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return bearer_key(header)
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None
    key = decoded.partition(":")[2]
    return key if KEY_PATTERN.match(key) else None


def current_principal() -> Principal | None:
    """The caller, or None when no valid, unrevoked key was presented."""
    if "hoard_principal" not in g:
        g.hoard_principal = _lookup(presented_key(request.headers.get("Authorization")))
    return g.hoard_principal


def presented_valid_key() -> bool:
    """Whether the request presented a valid key, without a lookup of its own.

    Nearly every request has looked its key up by the time it is answered
    (the rate limiter keys on it); one that has not is taken at its word if
    it presented a well-formed key, erring towards treating it as private.
    """
    if "hoard_principal" in g:
        return g.hoard_principal is not None
    return presented_key(request.headers.get("Authorization")) is not None


def require_principal() -> Principal:
    principal = current_principal()
    if principal is None:
        raise Unauthorized()
    return principal


def require_tenant() -> Tenant:
    return require_principal().tenant


def _lookup(key: str | None) -> Principal | None:
    if key is None:
        return None
    row = db.session.execute(PRINCIPAL_BY_DIGEST, {"digest": key_digest(key)}).first()
    if row is None:
        return None
    return Principal(tenant=row[0], tenant_id=row[0].id, key_last_4=row[1])
