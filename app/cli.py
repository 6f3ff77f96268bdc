"""Operator commands: `flask tenants ...`, `flask keys ...`."""

import json

import click
from flask import Flask
from flask.cli import AppGroup

from .errors import ApiError
from .services import cache as cache_service
from .services import tenants as tenant_service
from .services.plans import PLANS

tenants_cli = AppGroup("tenants", help="Create, list and update tenants.")
keys_cli = AppGroup("keys", help="Create, list and revoke API keys.")


def _fail(error: ApiError):
    raise click.ClickException(error.message)


@tenants_cli.command("create")
@click.argument("slug")
@click.option("--name", help="Display name (defaults to the slug).")
@click.option("--plan", type=click.Choice(sorted(PLANS)), default="pro", show_default=True)
@click.option("--with-key", is_flag=True, help="Also create an API key and print it once.")
def create_tenant(slug: str, name: str | None, plan: str, with_key: bool):
    """Create a tenant."""
    try:
        tenant = tenant_service.create_tenant(slug, name=name, plan=plan)
    except ApiError as error:
        _fail(error)
    click.echo(f"created tenant {tenant.slug} ({tenant.id}), plan {tenant.plan}")
    if with_key:
        _, plaintext = tenant_service.create_key(tenant)
        click.echo(f"API key (shown once): {plaintext}")


@tenants_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_tenants(as_json: bool):
    """List tenants."""
    rows = [
        {
            "id": t.id,
            "slug": t.slug,
            "name": t.name,
            "plan": t.plan,
            "cache_status": t.cache_status,
            "cache_retention_days": t.cache_retention_days,
            "cache_max_bytes": t.cache_max_bytes,
            "storage_quota_bytes": t.storage_quota_bytes,
        }
        for t in tenant_service.list_tenants()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['slug']}\t{row['id']}\t{row['plan']}\t{row['cache_status']}\t{row['name']}")


@tenants_cli.command("update")
@click.argument("slug")
@click.option("--name")
@click.option("--plan", type=click.Choice(sorted(PLANS)))
@click.option("--cache-status", type=click.Choice(tenant_service.CACHE_STATUSES))
@click.option("--cache-retention-days", type=click.IntRange(min=1))
@click.option("--cache-max-bytes", type=click.IntRange(min=0), help="0 removes the cap.")
@click.option("--storage-quota-bytes", type=click.IntRange(min=0), help="0 removes the quota.")
def update_tenant(slug: str, **settings):
    """Change a tenant's plan or settings."""
    try:
        tenant = tenant_service.update_tenant(tenant_service.get_tenant(slug), **settings)
    except ApiError as error:
        _fail(error)
    click.echo(f"updated tenant {tenant.slug} ({tenant.id})")


@tenants_cli.command("stats")
@click.argument("slug")
def tenant_stats(slug: str):
    """Build-cache hit rate, bytes moved and time saved (JSON)."""
    try:
        tenant = tenant_service.get_tenant(slug)
    except ApiError as error:
        _fail(error)
    click.echo(json.dumps(cache_service.stats(tenant), indent=2))


@keys_cli.command("create")
@click.argument("slug")
def create_key(slug: str):
    """Create an API key; it is printed once and never stored in clear."""
    try:
        tenant = tenant_service.get_tenant(slug)
    except ApiError as error:
        _fail(error)
    api_key, plaintext = tenant_service.create_key(tenant)
    click.echo(f"created key {api_key.id} for {tenant.slug} (shown once, store it now):")
    click.echo(plaintext)


@keys_cli.command("list")
@click.argument("slug")
def list_keys(slug: str):
    """List a tenant's keys (id, last 4 characters, state)."""
    try:
        tenant = tenant_service.get_tenant(slug)
    except ApiError as error:
        _fail(error)
    for api_key in tenant_service.list_keys(tenant):
        state = f"revoked {api_key.revoked_at:%Y-%m-%dT%H:%M:%SZ}" if api_key.revoked_at else "active"
        click.echo(f"{api_key.id}\t...{api_key.last_4}\t{api_key.created_at:%Y-%m-%dT%H:%M:%SZ}\t{state}")


@keys_cli.command("revoke")
@click.argument("slug")
@click.argument("key_id", type=int)
def revoke_key(slug: str, key_id: int):
    """Revoke a key; it stops working on the next request."""
    try:
        api_key = tenant_service.revoke_key(tenant_service.get_tenant(slug), key_id)
    except ApiError as error:
        _fail(error)
    click.echo(f"revoked key {api_key.id} (...{api_key.last_4})")


@click.command("demo")
@click.option("--slug", default="demo", show_default=True)
def demo(slug: str):
    """Create the demo tenant and its key, printing the key this one time."""
    try:
        tenant = tenant_service.get_tenant(slug)
    except ApiError:
        tenant = tenant_service.create_tenant(slug, name="Demo")
        _, plaintext = tenant_service.create_key(tenant)
        click.echo(f"demo tenant: {tenant.slug} ({tenant.id})")
        click.echo(f"API key (shown once, store it now): {plaintext}")
        return
    click.echo(f"demo tenant: {tenant.slug} ({tenant.id}) exists; `flask keys create {slug}` makes a new key")


def init_app(app: Flask) -> None:
    app.cli.add_command(tenants_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(demo)
