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
    # Bytes stored, kept by database triggers on blobs and cache_entries (see
    # the migration 5e1f0c2a7b31): never written by the application.
    blob_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    cache_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)


class ApiKey(db.Model):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex of the key
    last_4: Mapped[str] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(default=now)
    revoked_at: Mapped[datetime | None]


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


class ToolUsageMonth(db.Model):
    """Per tenant per calendar month per build tool: the cache's hits, misses
    and bytes moved (the tenant's totals in UsageMonth include them)."""

    __tablename__ = "tool_usage_months"
    __table_args__ = (UniqueConstraint("tenant_id", "month", "tool"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    tool: Mapped[str] = mapped_column(String(16))
    cache_hits: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_misses: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_bytes_served: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_bytes_uploaded: Mapped[int] = mapped_column(BigInteger, default=0)
