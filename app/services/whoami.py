"""whoami: who the caller is and what the plan allows, with real figures."""

from dataclasses import dataclass

from flask import current_app

from ..auth import Principal
from . import links, usage
from .plans import Plan, plan_for


@dataclass
class Account:
    tenant_id: str
    tenant_slug: str
    tenant_name: str
    plan: Plan
    api_key_last_4: str
    requests_this_month: int
    storage_bytes: int
    storage_limit_bytes: int | None
    active_links: int
    rate_limit_sustained: int
    rate_limit_burst: int


def account_of(principal: Principal) -> Account:
    tenant = principal.tenant
    return Account(
        tenant_id=tenant.id,
        tenant_slug=tenant.slug,
        tenant_name=tenant.name,
        plan=plan_for(tenant.plan),
        api_key_last_4=principal.key_last_4,
        requests_this_month=usage.requests_this_month(tenant),
        storage_bytes=usage.storage_bytes(tenant),
        storage_limit_bytes=usage.storage_limit(tenant),
        active_links=links.active_link_count(tenant),
        rate_limit_sustained=current_app.config["RATE_LIMIT_SUSTAINED"],
        rate_limit_burst=current_app.config["RATE_LIMIT_BURST"],
    )
