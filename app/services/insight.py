"""What the console and `flask tenants stats` show: a tenant's build-cache
figures over a period, read from its hourly rollups (UsageHour), and its
cache entries by size, reads and eviction order.

A period ends now and starts on a whole hour (24h, 7d: one point per hour)
or at midnight UTC (30d, 90d: one point per day), so both views of the same
period add up the same rows, to the byte and the millisecond.
"""

from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import case, func, select

from ..clock import now
from ..errors import InvalidRequest
from ..extensions import db
from ..models import Artifact, CacheEntry, Tenant, UsageHour
from . import tool_cache, usage

# name -> (points, hours per point)
PERIODS = {"24h": (24, 1), "7d": (7 * 24, 1), "30d": (30, 24), "90d": (90, 24)}


@dataclass(frozen=True)
class Totals:
    """Sums over a period, or one chart point (start = the point's start)."""

    start: datetime
    remote_hits: int = 0
    remote_misses: int = 0
    local_hits: int = 0
    local_misses: int = 0
    remote_saved_ms: int = 0  # turbo event durations of hits
    local_saved_ms: int = 0
    lookups_hit: int = 0  # /v8 requests served
    lookups_miss: int = 0
    uploads: int = 0
    bytes_uploaded: int = 0
    bytes_served: int = 0
    ci_events: int = 0  # turbo events by origin
    interactive_events: int = 0
    other_events: int = 0


COUNTED = tuple(field.name for field in fields(Totals) if field.name != "start")


@dataclass(frozen=True)
class ToolFigures:
    """One build tool's cache over a period (requests served), and what it stores now."""

    enabled: bool
    hits: int = 0
    misses: int = 0
    uploads: int = 0
    bytes_served: int = 0
    bytes_uploaded: int = 0
    entries: int = 0
    bytes_stored: int = 0


@dataclass(frozen=True)
class Overview:
    period: str
    start: datetime
    end: datetime
    bucket: str  # "hour" | "day"
    totals: Totals
    series: list[Totals]
    remote_hit_rate: float | None  # None when no events
    local_hit_rate: float | None
    artifacts_stored: int
    storage_bytes: int
    storage_limit: int | None
    cache_bytes: int
    cache_max_bytes: int | None
    cache_entries: int
    tools: dict[str, ToolFigures]  # turbo first, then every other build tool


def period_bounds(period: str, *, at: datetime | None = None) -> tuple[datetime, datetime, int, int]:
    """(start, end, points, hours per point) of a named period ending `at`."""
    if period not in PERIODS:
        raise InvalidRequest(f"period must be one of {', '.join(PERIODS)}")
    end = at or now()
    points, hours = PERIODS[period]
    last = usage.hour_of(end)
    if hours == 24:
        last = last.replace(hour=0)
    return last - timedelta(hours=hours * (points - 1)), end, points, hours


def overview(tenant: Tenant, period: str) -> Overview:
    """The tenant's figures for the period, with one point per hour or day."""
    start, end, points, hours = period_bounds(period)
    usage.flush_counts()  # this process's pending counts belong in the figures
    tools = by_tool(tenant, start)
    rows = db.session.execute(
        select(UsageHour.hour, *(getattr(UsageHour, name) for name in COUNTED)).where(
            UsageHour.tenant_id == tenant.id, UsageHour.tool == usage.TURBO, UsageHour.hour >= start
        )
    ).all()
    step = timedelta(hours=hours)
    sums = [[0] * len(COUNTED) for _ in range(points)]
    for hour, *counts in rows:
        index = (hour - start) // step
        if 0 <= index < points:
            sums[index] = [total + int(count) for total, count in zip(sums[index], counts, strict=True)]
    series = [Totals(start + step * i, *point) for i, point in enumerate(sums)]
    totals = Totals(start, *(sum(column) for column in zip(*sums, strict=True)))
    return Overview(
        period=period,
        start=start,
        end=end,
        bucket="hour" if hours == 1 else "day",
        totals=totals,
        series=series,
        remote_hit_rate=_rate(totals.remote_hits, totals.remote_misses),
        local_hit_rate=_rate(totals.local_hits, totals.local_misses),
        artifacts_stored=db.session.scalar(
            select(func.count())
            .select_from(Artifact)
            .where(Artifact.tenant_id == tenant.id, Artifact.status == "active", Artifact.live_at(end))
        ),
        storage_bytes=usage.storage_bytes(tenant),
        storage_limit=usage.storage_limit(tenant),
        cache_bytes=int(db.session.scalar(select(Tenant.cache_bytes).where(Tenant.id == tenant.id)) or 0),
        cache_max_bytes=tenant.cache_max_bytes,
        cache_entries=sum(figures.entries for figures in tools.values()),
        tools=tools,
    )


# A tool's entries are named "<tool>/<key>"; turbo's hold no '/'.
_TOOL_OF_ENTRY = case(
    *((CacheEntry.hash.like(f"{tool}/%"), tool) for tool in tool_cache.TOOLS), else_=usage.TURBO
)


def by_tool(tenant: Tenant, start: datetime) -> dict[str, ToolFigures]:
    """Each tool's requests served since `start` and its entries now: one
    read of the rollups, one pass over the tenant's entries."""
    served = {
        row.tool: row
        for row in db.session.execute(
            select(
                UsageHour.tool,
                func.sum(UsageHour.lookups_hit).label("hits"),
                func.sum(UsageHour.lookups_miss).label("misses"),
                func.sum(UsageHour.uploads).label("uploads"),
                func.sum(UsageHour.bytes_served).label("bytes_served"),
                func.sum(UsageHour.bytes_uploaded).label("bytes_uploaded"),
            )
            .where(UsageHour.tenant_id == tenant.id, UsageHour.hour >= start)
            .group_by(UsageHour.tool)
        )
    }
    stored = {
        tool: (int(entries), int(size))
        for tool, entries, size in db.session.execute(
            select(_TOOL_OF_ENTRY, func.count(), func.coalesce(func.sum(CacheEntry.size_bytes), 0))
            .where(CacheEntry.tenant_id == tenant.id)
            .group_by(_TOOL_OF_ENTRY)
        )
    }
    figures = {}
    for tool in (usage.TURBO, *tool_cache.TOOLS):
        row = served.get(tool)
        entries, size = stored.get(tool, (0, 0))
        figures[tool] = ToolFigures(
            enabled=tool == usage.TURBO or tool_cache.tool_enabled(tenant, tool),
            hits=int(row.hits) if row else 0,
            misses=int(row.misses) if row else 0,
            uploads=int(row.uploads) if row else 0,
            bytes_served=int(row.bytes_served) if row else 0,
            bytes_uploaded=int(row.bytes_uploaded) if row else 0,
            entries=entries,
            bytes_stored=size,
        )
    return figures


def _rate(hits: int, misses: int) -> float | None:
    return round(hits / (hits + misses), 4) if hits + misses else None


@dataclass(frozen=True)
class EntryRow:
    hash: str
    size_bytes: int
    duration_ms: int
    read_count: int
    created_at: datetime
    last_read_at: datetime
    evicts_at: datetime  # when retention removes it unless read again
    tag_present: bool


def largest_entries(tenant: Tenant, limit: int = 20) -> list[EntryRow]:
    return _entries(tenant, (CacheEntry.size_bytes.desc(), CacheEntry.hash), limit)


def most_read_entries(tenant: Tenant, limit: int = 20) -> list[EntryRow]:
    usage.flush_counts()
    return _entries(tenant, (CacheEntry.read_count.desc(), CacheEntry.hash), limit)


def evicting_soon(tenant: Tenant, limit: int = 20) -> list[EntryRow]:
    """The entries gc removes first: least recently read, which is both the
    retention order and the order a size cap evicts in (services/gc.py)."""
    return _entries(tenant, (CacheEntry.last_read_at, CacheEntry.hash), limit)


def _entries(tenant: Tenant, order: tuple, limit: int) -> list[EntryRow]:
    retention = timedelta(days=tenant.cache_retention_days)
    rows = db.session.execute(
        select(
            CacheEntry.hash,
            CacheEntry.size_bytes,
            CacheEntry.duration_ms,
            CacheEntry.read_count,
            CacheEntry.created_at,
            CacheEntry.last_read_at,
            CacheEntry.tag.is_not(None).label("tag_present"),
        )
        .where(CacheEntry.tenant_id == tenant.id)
        .order_by(*order)
        .limit(limit)
    ).all()
    return [
        EntryRow(
            hash=row.hash,
            size_bytes=row.size_bytes,
            duration_ms=row.duration_ms,
            read_count=row.read_count,
            created_at=row.created_at,
            last_read_at=row.last_read_at,
            evicts_at=row.last_read_at + retention,
            tag_present=bool(row.tag_present),
        )
        for row in rows
    ]
