"""Public links: unauthenticated downloads of one artifact until they expire."""

import re
from datetime import timedelta

from sqlalchemy import func, select, update

from ..clock import now
from ..errors import InvalidRequest, LinkExpired, LinkNotFound, QuotaExceeded
from ..extensions import db
from ..models import Artifact, Link, Tenant
from .artifacts import reads
from .ids import random_id
from .plans import PLANS, plan_for, upgrade_offer

DEFAULT_LINK_SECONDS = 7 * 86400
LINK_ID = re.compile(r"^lnk_[A-Za-z0-9]{20}$")


def active_link_count(tenant: Tenant) -> int:
    current = now()
    return db.session.scalar(
        select(func.count(Link.id))
        .join(Artifact, Artifact.id == Link.artifact_id)
        .where(
            Link.tenant_id == tenant.id,
            Link.expires_at > current,
            Artifact.live_at(current),
        )
    )


def create_link(tenant: Tenant, artifact_id: str, *, expires_in: int | None) -> Link:
    """A link for `expires_in` seconds (None: the default), within the plan's limits."""
    plan = plan_for(tenant.plan)
    seconds = _link_seconds(expires_in, plan)
    reads.ensure_downloadable(reads.find_artifact(tenant, artifact_id))
    if plan.max_active_links is not None:
        _one_link_at_a_time(tenant)
    if plan.max_active_links is not None and active_link_count(tenant) >= plan.max_active_links:
        raise QuotaExceeded(
            f"the {plan.name} plan allows {plan.max_active_links} active links",
            **upgrade_offer(plan, lambda other: other.max_active_links > plan.max_active_links),
        )
    created = now()
    link = Link(
        id=random_id("lnk_", 20),
        tenant_id=tenant.id,
        artifact_id=artifact_id,
        created_at=created,
        expires_at=created + timedelta(seconds=seconds),
    )
    db.session.add(link)
    db.session.commit()
    return link


def _one_link_at_a_time(tenant: Tenant) -> None:
    """Until this transaction ends, no other link of the tenant is counted
    and created: else concurrent requests each see room for one more.

    PostgreSQL: an advisory lock, which no row lock waits on, so it cannot
    deadlock with an upload holding its artifact's row and then the tenant's.
    SQLite: a write, which takes the database's one write lock."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended("links:" + tenant.id, 0))))
    else:
        db.session.execute(update(Tenant).where(Tenant.id == tenant.id).values(id=Tenant.id))


def _link_seconds(expires_in: int | None, plan) -> int:
    if expires_in is None:
        return min(DEFAULT_LINK_SECONDS, plan.max_link_seconds)
    if expires_in > plan.max_link_seconds:
        longest = max(p.max_link_seconds for p in PLANS.values())
        if expires_in <= longest:
            raise QuotaExceeded(
                f"the {plan.name} plan allows links of at most {plan.max_link_seconds // 86400} days",
                **upgrade_offer(plan, lambda other: expires_in <= other.max_link_seconds),
            )
        raise InvalidRequest(f"expires_in may be at most {longest} seconds")
    return expires_in


def artifact_for_link(link_id: str) -> Artifact:
    """The artifact behind a public link, while both are live.

    The link id is the capability: it is looked up without a tenant because
    holding it is the whole authorisation.
    """
    link = db.session.get(Link, link_id) if LINK_ID.match(link_id) else None
    if link is None:
        raise LinkNotFound()
    if link.expires_at <= now():
        raise LinkExpired()
    return reads.ensure_downloadable(link.artifact)
