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


PLANS = {
    "free": Plan(
        name="free",
        max_ttl=timedelta(days=90),
        allows_never=False,
        max_link_seconds=30 * 86400,
        max_active_links=50,
        storage_limit_bytes=5 * GB,
        requests_limit_month=100_000,
    ),
    "pro": Plan(
        name="pro",
        max_ttl=timedelta(days=365),
        allows_never=True,
        max_link_seconds=90 * 86400,
        max_active_links=500,
        storage_limit_bytes=1000 * GB,
        requests_limit_month=10_000_000,
    ),
}


def plan_for(plan_name: str) -> Plan:
    return PLANS.get(plan_name, PLANS["pro"])


def upgrade_offer(plan: Plan, allows: Callable[[Plan], bool]) -> dict[str, str]:
    """`upgrade_url` for a refusal's body, when a plan above `plan` (later in
    PLANS) allows what `plan` refused."""
    names = list(PLANS)
    above = names[names.index(plan.name) + 1 :] if plan.name in PLANS else []
    return {"upgrade_url": UPGRADE_URL} if any(allows(PLANS[name]) for name in above) else {}
