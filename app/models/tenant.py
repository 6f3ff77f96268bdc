from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import now
from ..extensions import db


class Tenant(db.Model):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # team_...
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    plan: Mapped[str] = mapped_column(String(16), default="pro")
    created_at: Mapped[datetime] = mapped_column(default=now)
    # Build-cache settings honoured by the API and by garbage collection.
    cache_status: Mapped[str] = mapped_column(String(16), default="enabled")
    cache_retention_days: Mapped[int] = mapped_column(Integer, default=30)
    cache_max_bytes: Mapped[int | None] = mapped_column(BigInteger)
    storage_quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # Build tools whose cache (services/tool_cache.py) is turned off, comma-separated.
    cache_tools_off: Mapped[str] = mapped_column(String(200), server_default="", default="")
    # Bytes and objects stored, kept by database triggers on blobs and
    # cache_entries (see the migrations 5e1f0c2a7b31 and 8a4d2b6c1e90): never
    # written by the application.
    blob_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    cache_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    blob_count: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    cache_count: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)


class ApiKey(db.Model):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex of the key
    last_4: Mapped[str] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(default=now)
    revoked_at: Mapped[datetime | None]
    # "admin" keys manage keys and settings in the console; "member" keys
    # see their tenant there but change nothing.
    role: Mapped[str] = mapped_column(String(16), server_default="member", default="member")
    # Written at most once a minute per key and process (services/usage.py).
    last_used_at: Mapped[datetime | None]
    # Console sessions this key began before then are over (its sign-out).
    console_signed_out_at: Mapped[datetime | None]

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class UsageMonth(db.Model):
    """Per tenant per calendar month: authenticated requests (whoami) and the
    build cache's hits, misses and bytes moved (stats)."""

    __tablename__ = "usage_months"
    __table_args__ = (UniqueConstraint("tenant_id", "month"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_hits: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_misses: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_bytes_served: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_bytes_uploaded: Mapped[int] = mapped_column(BigInteger, default=0)


class UsageHour(db.Model):
    """Per tenant per hour (UTC) per build tool: what the console's overview
    and `flask tenants stats` add up, so a period of any length reads at most
    one row per hour and tool. Filled as traffic arrives: turbo's events in
    the transaction that stores them, cache requests with the batched usage
    counters."""

    __tablename__ = "usage_hours"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    tool: Mapped[str] = mapped_column(String(16), primary_key=True)  # "turbo" for /v8
    # turbo's reported events; saved_ms sums each hit's duration (Vercel's "time saved")
    remote_hits: Mapped[int] = mapped_column(BigInteger, default=0)
    remote_misses: Mapped[int] = mapped_column(BigInteger, default=0)
    local_hits: Mapped[int] = mapped_column(BigInteger, default=0)
    local_misses: Mapped[int] = mapped_column(BigInteger, default=0)
    remote_saved_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    local_saved_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    # events by the origin turbo declared (x-artifact-client-ci / -interactive)
    ci_events: Mapped[int] = mapped_column(BigInteger, default=0)
    interactive_events: Mapped[int] = mapped_column(BigInteger, default=0)
    other_events: Mapped[int] = mapped_column(BigInteger, default=0)
    # cache requests served
    lookups_hit: Mapped[int] = mapped_column(BigInteger, default=0)
    lookups_miss: Mapped[int] = mapped_column(BigInteger, default=0)
    uploads: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_uploaded: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_served: Mapped[int] = mapped_column(BigInteger, default=0)
