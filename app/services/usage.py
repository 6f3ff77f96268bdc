"""Usage figures shared by quotas, whoami and the cache status."""

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ..clock import now
from ..extensions import db
from ..models import Blob, CacheEntry, Tenant, UsageMonth
from .plans import plan_for


def storage_bytes(tenant: Tenant) -> int:
    """Bytes stored: each unique artifact blob once, plus the build cache."""
    blobs = db.session.scalar(
        select(func.coalesce(func.sum(Blob.size_bytes), 0)).where(Blob.tenant_id == tenant.id)
    )
    cache = db.session.scalar(
        select(func.coalesce(func.sum(CacheEntry.size_bytes), 0)).where(CacheEntry.tenant_id == tenant.id)
    )
    return int(blobs) + int(cache)


def storage_limit(tenant: Tenant) -> int | None:
    """The tenant's own quota when an operator set one, else the plan's."""
    if tenant.storage_quota_bytes is not None:
        return tenant.storage_quota_bytes
    return plan_for(tenant.plan).storage_limit_bytes


def over_storage_quota(tenant: Tenant, *, adding: int = 0) -> bool:
    limit = storage_limit(tenant)
    return limit is not None and storage_bytes(tenant) + adding > limit


def current_month() -> str:
    return now().strftime("%Y-%m")


def count_request(tenant_id: str) -> None:
    """Add one authenticated request to this month's figure."""
    month = current_month()
    counted = db.session.execute(
        update(UsageMonth)
        .where(UsageMonth.tenant_id == tenant_id, UsageMonth.month == month)
        .values(requests=UsageMonth.requests + 1)
    ).rowcount
    if not counted:
        try:
            with db.session.begin_nested():
                db.session.add(UsageMonth(tenant_id=tenant_id, month=month, requests=1))
        except IntegrityError:
            # Another process created this month's row first.
            db.session.execute(
                update(UsageMonth)
                .where(UsageMonth.tenant_id == tenant_id, UsageMonth.month == month)
                .values(requests=UsageMonth.requests + 1)
            )
    db.session.commit()


def requests_this_month(tenant: Tenant) -> int:
    value = db.session.scalar(
        select(UsageMonth.requests).where(
            UsageMonth.tenant_id == tenant.id, UsageMonth.month == current_month()
        )
    )
    return int(value or 0)
