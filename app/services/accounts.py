"""whoami: who the caller is and what the plan allows, with real figures."""

from flask import current_app

from ..auth import Principal
from . import links, usage
from .plans import plan_for


def whoami(principal: Principal) -> dict:
    tenant = principal.tenant
    plan = plan_for(tenant.plan)
    return {
        "tenant_id": tenant.id,
        "tenant_slug": tenant.slug,
        "tenant_name": tenant.name,
        "plan": plan.name,
        "api_key_last_4": principal.key_last_4,
        "usage_requests_month": usage.requests_this_month(tenant),
        "plan_requests_limit_month": plan.requests_limit_month,
        "usage_storage_bytes": usage.storage_bytes(tenant),
        "plan_storage_limit_bytes": usage.storage_limit(tenant),
        "active_links": links.active_link_count(tenant),
        "max_active_links": plan.max_active_links,
        "rate_limit_sustained": current_app.config["RATE_LIMIT_SUSTAINED"],
        "rate_limit_burst": current_app.config["RATE_LIMIT_BURST"],
    }
