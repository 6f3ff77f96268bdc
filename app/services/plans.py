"""What each plan allows.

Every figure is a number: the official CLI formats whoami's limits as
integers and crashes on null, so "unlimited" is a large finite allowance.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

GB = 1000**3
UPGRADE_URL = "https://artifacta.io/pricing"


@dataclass(frozen=True)
class Plan:
    name: str
    max_ttl: timedelta
    allows_never: bool
    max_link_seconds: int
    max_active_links: int
    storage_limit_bytes: int
    requests_limit_month: int


# Cheapest first: upgrade_offer() looks at the plans after the tenant's.
PLANS = {
    plan.name: plan
    for plan in (
        # name, max_ttl, allows_never, max_link_seconds, max_active_links, storage_limit_bytes,
        # requests_limit_month
        Plan("free", timedelta(days=90), False, 30 * 86400, 50, 5 * GB, 100_000),
        Plan("pro", timedelta(days=365), True, 90 * 86400, 500, 1000 * GB, 10_000_000),
    )
}


def plan_for(plan_name: str) -> Plan:
    return PLANS.get(plan_name, PLANS["pro"])


def upgrade_offer(plan: Plan, allows: Callable[[Plan], bool]) -> dict[str, str]:
    """`upgrade_url` for a refusal's body, when a plan above `plan` (later in
    PLANS) allows what `plan` refused."""
    names = list(PLANS)
    above = names[names.index(plan.name) + 1 :] if plan.name in PLANS else []
    return {"upgrade_url": UPGRADE_URL} if any(allows(PLANS[name]) for name in above) else {}
