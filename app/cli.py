"""Operator commands: `flask tenants ...`, `flask keys ...`, `flask gc`."""

import json
import logging
from time import sleep

import click
from flask import Flask
from flask.cli import AppGroup

from . import clock
from .api import serializers
from .errors import ApiError
from .extensions import db
from .services import cache as cache_service
from .services import gc as gc_service
from .services import tenants as tenant_service
from .services import tool_cache
from .services.plans import PLANS

log = logging.getLogger(__name__)

tenants_cli = AppGroup("tenants", help="Create, list and update tenants.")
keys_cli = AppGroup("keys", help="Create, list and revoke API keys.")


def _fail(error: ApiError):
    raise click.ClickException(error.message)


def _tenant(slug: str):
    try:
        return tenant_service.get_tenant(slug)
    except ApiError as error:
        _fail(error)


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
            "cache_tools_off": [tool for tool in tool_cache.TOOLS if not tool_cache.tool_enabled(t, tool)],
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
        tenant = tenant_service.update_tenant(_tenant(slug), **settings)
    except ApiError as error:
        _fail(error)
    click.echo(f"updated tenant {tenant.slug} ({tenant.id})")


@tenants_cli.command("stats")
@click.argument("slug")
def tenant_stats(slug: str):
    """Build-cache hit rate, bytes moved and time saved, in all and per tool (JSON)."""
    tenant = _tenant(slug)
    figures = serializers.cache_stats(cache_service.stats(tenant))
    figures["tools"] = serializers.tool_usage(tool_cache.usage_by_tool(tenant), tenant)
    click.echo(json.dumps(figures, indent=2))


@tenants_cli.command("set-tool")
@click.argument("slug")
@click.argument("tool", type=click.Choice(tool_cache.TOOLS))
@click.argument("state", type=click.Choice(["on", "off"]))
def set_tool(slug: str, tool: str, state: str):
    """Turn one build tool's cache on or off for a tenant."""
    tenant = tool_cache.set_tool(_tenant(slug), tool, enabled=state == "on")
    click.echo(f"{tool} cache {state} for tenant {tenant.slug} ({tenant.id})")


@keys_cli.command("create")
@click.argument("slug")
def create_key(slug: str):
    """Create an API key; it is printed once and never stored in clear."""
    tenant = _tenant(slug)
    api_key, plaintext = tenant_service.create_key(tenant)
    click.echo(f"created key {api_key.id} for {tenant.slug} (shown once, store it now):")
    click.echo(plaintext)


@keys_cli.command("list")
@click.argument("slug")
def list_keys(slug: str):
    """List a tenant's keys (id, last 4 characters, state)."""
    tenant = _tenant(slug)
    for api_key in tenant_service.list_keys(tenant):
        state = f"revoked {api_key.revoked_at:%Y-%m-%dT%H:%M:%SZ}" if api_key.revoked_at else "active"
        click.echo(f"{api_key.id}\t...{api_key.last_4}\t{api_key.created_at:%Y-%m-%dT%H:%M:%SZ}\t{state}")


@keys_cli.command("revoke")
@click.argument("slug")
@click.argument("key_id", type=int)
def revoke_key(slug: str, key_id: int):
    """Revoke a key; it stops working on the next request."""
    try:
        api_key = tenant_service.revoke_key(_tenant(slug), key_id)
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


GC_LABELS = {
    "reservations": "expired upload reservations",
    "artifacts": "deleted or expired artifacts",
    "blobs": "unreferenced blobs",
    "cache_expired": "cache entries past retention",
    "cache_over_cap": "cache entries over size cap",
    "abandoned_uploads": "abandoned temporary uploads",
    "orphans": "orphan objects",
    "records": "old idempotency keys and events",
}


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Report what would be deleted; delete nothing.")
@click.option(
    "--interval",
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="Run forever, sleeping SECONDS between runs (a Procfile worker).",
)
def gc(dry_run: bool, interval: float | None):
    """Delete expired and unreferenced data and report the bytes freed.

    Safe at any time, beside the server and beside another gc.
    """
    while True:
        try:
            report = gc_service.collect(now=clock.now(), dry_run=dry_run)
        except Exception:
            if interval is None:
                raise
            # A worker outlives a database or storage hiccup: the next run retries.
            db.session.rollback()
            log.exception("gc run failed; next run in %s s", interval)
        else:
            _echo_report(report)
        if interval is None:
            return
        db.session.remove()  # hand the connection back to the pool while asleep
        sleep(interval)


def _echo_report(report: gc_service.GcReport) -> None:
    click.echo(f"gc {'dry run' if report.dry_run else 'run'} at {clock.now():%Y-%m-%dT%H:%M:%SZ}")
    verb = "would free" if report.dry_run else "freed"
    for name, tally in report.categories():
        label = GC_LABELS[name]
        if tally is None:
            click.echo(f"  {label:<30} not inspected in a dry run")
        else:
            click.echo(f"  {label:<30} {tally.count:>8}  {verb} {_bytes(tally.bytes)}")
    total = report.total
    click.echo(f"  {'total':<30} {total.count:>8}  {verb} {_bytes(total.bytes)}")
    if total.failed:
        click.echo(f"  {total.failed} object(s) could not be deleted; a later run removes them as orphans")


def _bytes(count: int) -> str:
    """`1,234,567 bytes (1.2 MiB)`; under a KiB, just the bytes."""
    if count < 1024:
        return f"{count:,} bytes"
    size, unit = count / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{count:,} bytes ({size:.1f} {unit})"


def init_app(app: Flask) -> None:
    app.cli.add_command(tenants_cli)
    app.cli.add_command(keys_cli)
    app.cli.add_command(demo)
    app.cli.add_command(gc)
