"""Tenants and their API keys (the CLI's operations)."""

import re
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..auth import key_digest
from ..clock import now
from ..errors import Conflict, InvalidRequest, NotFound
from ..extensions import db
from ..models import ApiKey, Tenant
from . import tool_cache
from .ids import random_id
from .plans import PLANS

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
CACHE_STATUSES = ("enabled", "disabled", "paused")
MAX_RETENTION_DAYS = 3650
# Caps and quotas are 64-bit columns.
MAX_SIZE_BYTES = 2**63
ADMIN, MEMBER = "admin", "member"


def create_tenant(slug: str, *, name: str | None = None, plan: str = "pro") -> Tenant:
    if not SLUG_PATTERN.match(slug) or slug.startswith("team_"):
        raise InvalidRequest("slug must be 1-63 lowercase letters, digits or '-', not starting with 'team_'")
    if plan not in PLANS:
        raise InvalidRequest(f"plan must be one of {', '.join(PLANS)}")
    tenant = Tenant(id=random_id("team_", 24), slug=slug, name=name or slug, plan=plan)
    db.session.add(tenant)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(f"a tenant with slug {slug!r} already exists") from None
    return tenant


def get_tenant(slug_or_id: str) -> Tenant:
    tenant = db.session.scalar(select(Tenant).where((Tenant.slug == slug_or_id) | (Tenant.id == slug_or_id)))
    if tenant is None:
        raise NotFound(f"no tenant {slug_or_id!r}")
    return tenant


def list_tenants() -> list[Tenant]:
    return list(db.session.scalars(select(Tenant).order_by(Tenant.created_at, Tenant.slug)))


def update_tenant(
    tenant: Tenant,
    *,
    plan: str | None = None,
    name: str | None = None,
    cache_status: str | None = None,
    cache_retention_days: int | None = None,
    cache_max_bytes: int | None = None,
    storage_quota_bytes: int | None = None,
    cache_tools_off: Collection[str] | None = None,
) -> Tenant:
    """Change settings; a size of 0 clears a cap or quota. `cache_tools_off`
    names every build tool whose cache is turned off (the rest are on)."""
    if plan is not None:
        if plan not in PLANS:
            raise InvalidRequest(f"plan must be one of {', '.join(PLANS)}")
        tenant.plan = plan
    if name is not None:
        tenant.name = name
    if cache_status is not None:
        if cache_status not in CACHE_STATUSES:
            raise InvalidRequest(f"cache status must be one of {', '.join(CACHE_STATUSES)}")
        tenant.cache_status = cache_status
    if cache_retention_days is not None:
        if not 1 <= cache_retention_days <= MAX_RETENTION_DAYS:
            raise InvalidRequest(f"cache retention must be 1 to {MAX_RETENTION_DAYS} days")
        tenant.cache_retention_days = cache_retention_days
    for name, size in (("cache cap", cache_max_bytes), ("storage quota", storage_quota_bytes)):
        if size is not None and not 0 <= size < MAX_SIZE_BYTES:
            raise InvalidRequest(f"the {name} must be 0 (none) to {MAX_SIZE_BYTES - 1:,} bytes")
    if cache_max_bytes is not None:
        tenant.cache_max_bytes = cache_max_bytes or None
    if storage_quota_bytes is not None:
        tenant.storage_quota_bytes = storage_quota_bytes or None
    if cache_tools_off is not None:
        tenant.cache_tools_off = tool_cache.tools_off_field(cache_tools_off)
    db.session.commit()
    return tenant


def create_key(tenant: Tenant, *, admin: bool = False) -> tuple[ApiKey, str]:
    """A new key for the tenant; the plaintext is returned once and never stored.

    An admin key also manages keys and settings in the console."""
    plaintext = random_id("ak_live_", 32)
    api_key = ApiKey(
        tenant_id=tenant.id,
        digest=key_digest(plaintext),
        last_4=plaintext[-4:],
        role=ADMIN if admin else MEMBER,
    )
    db.session.add(api_key)
    db.session.commit()
    return api_key, plaintext


def list_keys(tenant: Tenant) -> list[ApiKey]:
    return list(db.session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant.id).order_by(ApiKey.id)))


def revoke_key(tenant: Tenant, key_id: int) -> ApiKey:
    # Key ids are 32-bit: a larger number names no key (and no database takes it).
    api_key = None
    if 0 < key_id < 2**31:
        api_key = db.session.scalar(select(ApiKey).where(ApiKey.tenant_id == tenant.id, ApiKey.id == key_id))
    if api_key is None:
        raise NotFound(f"tenant {tenant.slug} has no key {key_id}")
    if api_key.revoked_at is None:
        api_key.revoked_at = now()
        db.session.commit()
    return api_key
