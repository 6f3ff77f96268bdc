"""Small helpers that make test data through the services."""

from app.services import tenants


def make_tenant(slug: str = "acme", *, plan: str = "pro"):
    """A tenant and one plaintext API key for it."""
    tenant = tenants.create_tenant(slug, plan=plan)
    _, key = tenants.create_key(tenant)
    return tenant, key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
