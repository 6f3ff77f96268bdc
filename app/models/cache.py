from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import now
from ..extensions import db


class CacheEntry(db.Model):
    """One build-cache artifact: the current version of a hash in a tenant.

    Every PUT writes its body under a fresh storage key and then points the
    row at it, so a row's size, duration and tag always describe its body.
    """

    __tablename__ = "cache_entries"
    __table_args__ = (
        Index("ix_cache_entries_tenant_last_read", "tenant_id", "last_read_at"),
        # the console's largest and most-read entries
        Index("ix_cache_entries_tenant_size", "tenant_id", "size_bytes"),
        Index("ix_cache_entries_tenant_reads", "tenant_id", "read_count"),
    )

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    hash: Mapped[str] = mapped_column(String(128), primary_key=True)
    storage_key: Mapped[str] = mapped_column(String(400))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    tag: Mapped[str | None] = mapped_column(String(1024))
    git_sha: Mapped[str | None] = mapped_column(String(128))
    dirty_hash: Mapped[str | None] = mapped_column(String(128))
    client_ci: Mapped[str | None] = mapped_column(String(50))
    client_interactive: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=now)
    last_read_at: Mapped[datetime] = mapped_column(default=now)
    # GETs served, added in batches by the usage counters (services/usage.py)
    read_count: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)


class CacheEvent(db.Model):
    """A hit or miss reported by turbo, for the tenant's hit rate and time saved."""

    __tablename__ = "cache_events"
    __table_args__ = (
        Index("ix_cache_events_tenant_created", "tenant_id", "created_at"),
        Index("ix_cache_events_created", "created_at"),  # retention purge in gc
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(db.Integer, "sqlite"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(8))  # LOCAL | REMOTE
    event: Mapped[str] = mapped_column(String(8))  # HIT | MISS
    hash: Mapped[str] = mapped_column(String(128))
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    client_ci: Mapped[str | None] = mapped_column(String(50))
    client_interactive: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=now)
