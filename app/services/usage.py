"""Usage figures shared by quotas, whoami and the cache status."""

import logging
import threading
import time
from collections import Counter
from datetime import datetime

from flask import Flask, current_app
from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..clock import now
from ..extensions import db
from ..models import ApiKey, CacheEntry, Tenant, UsageHour, UsageMonth
from .plans import plan_for

log = logging.getLogger(__name__)


# Kept by database triggers (see the Tenant model): one indexed row read,
# however many blobs and entries the tenant holds. Inside a transaction it
# includes the rows that transaction added or removed.
STORED_BYTES = select(Tenant.blob_bytes + Tenant.cache_bytes).where(Tenant.id == bindparam("tenant_id"))


def storage_bytes(tenant: Tenant) -> int:
    """Bytes stored: each unique artifact blob once, plus the build cache."""
    return int(db.session.scalar(STORED_BYTES, {"tenant_id": tenant.id}) or 0)


def storage_limit(tenant: Tenant) -> int | None:
    """The tenant's own quota when an operator set one, else the plan's."""
    if tenant.storage_quota_bytes is not None:
        return tenant.storage_quota_bytes
    return plan_for(tenant.plan).storage_limit_bytes


def storage_room(tenant: Tenant) -> int | None:
    """Bytes the tenant may still add (negative when over), None when unlimited."""
    limit = storage_limit(tenant)
    return None if limit is None else limit - storage_bytes(tenant)


def over_storage_quota(tenant: Tenant, *, adding: int = 0) -> bool:
    """Whether storing `adding` more bytes would pass the tenant's limit.

    Checked again inside the transaction that records new bytes, after the
    triggers counted them: what is committed never passes the limit.
    """
    room = storage_room(tenant)
    return room is not None and adding > room


def current_month() -> str:
    return now().strftime("%Y-%m")


# Requests are counted in memory and added to the database at most once per
# FLUSH_SECONDS per process: one UPDATE for many requests instead of a commit
# on every request's hot path. Each process adds its own delta, so the sum
# stays exact across processes; a crash loses at most that second's counts.
FLUSH_SECONDS = 1.0
# Counted per calendar month (whoami, plan limits) ...
COUNTERS = ("requests", "cache_hits", "cache_misses", "cache_bytes_served", "cache_bytes_uploaded")
# ... and per hour, under the console's names (UsageHour), for any period.
HOURLY = {
    "cache_hits": "lookups_hit",
    "cache_misses": "lookups_miss",
    "cache_uploads": "uploads",
    "cache_bytes_served": "bytes_served",
    "cache_bytes_uploaded": "bytes_uploaded",
}
EXTENSION = "hoard_usage"


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


# The build tool of the /v8 API; the other tools' names are theirs. turbo's
# entries hold no '/' in their names, every other tool's are "<tool>/<key>"
# (services/tool_cache.py).
TURBO = "turbo"
Slot = tuple[str, datetime, str]  # tenant id, hour, tool
# A key's last use is shown in the console to the minute: each process
# writes it at most once per KEY_USE_SECONDS per key, with the counts.
KEY_USE_SECONDS = 60.0


class PendingCounts:
    """One app's counts not yet written, and when they were last flushed:
    counters per (tenant, hour, tool), and GETs per (tenant, entry hash)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_slot: dict[Slot, Counter] = {}
        self.reads: Counter = Counter()
        self.last_flush = time.monotonic()
        # Key digest -> when this process last took its use (monotonic), and
        # the uses taken but not yet written (digest -> wall-clock time).
        self.key_noted: dict[str, float] = {}
        self.key_uses: dict[str, datetime] = {}

    def note_key(self, digest: str) -> None:
        moment = time.monotonic()
        with self.lock:
            if moment - self.key_noted.get(digest, -KEY_USE_SECONDS) < KEY_USE_SECONDS:
                return
            self.key_noted[digest] = moment
            self.key_uses[digest] = now()

    def take_key_uses(self) -> dict[str, datetime]:
        with self.lock:
            uses, self.key_uses = self.key_uses, {}
        return uses

    def add(self, slot: Slot, amounts: dict[str, int]) -> None:
        with self.lock:
            self.by_slot.setdefault(slot, Counter()).update(amounts)

    def add_read(self, tenant_id: str, entry_hash: str) -> None:
        with self.lock:
            self.reads[(tenant_id, entry_hash)] += 1

    def put_back(self, batch: dict[Slot, Counter], reads: Counter, key_uses: dict[str, datetime]) -> None:
        for slot, amounts in batch.items():
            self.add(slot, amounts)
        with self.lock:
            self.reads.update(reads)
            for digest, at in key_uses.items():
                self.key_uses.setdefault(digest, at)

    def take(self) -> tuple[dict[Slot, Counter], Counter]:
        with self.lock:
            batch, self.by_slot = self.by_slot, {}
            reads, self.reads = self.reads, Counter()
        return batch, reads

    def due(self) -> bool:
        """Whether FLUSH_SECONDS have passed; if so, the flush is now this caller's."""
        with self.lock:
            if time.monotonic() - self.last_flush < FLUSH_SECONDS:
                return False
            self.last_flush = time.monotonic()
            return True


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = PendingCounts()


def pending_counts(app: Flask | None = None) -> PendingCounts:
    return (app or current_app).extensions[EXTENSION]


def count(tenant_id: str, *, tool: str = TURBO, **amounts: int) -> None:
    """Add to this hour's counters (names from COUNTERS and HOURLY), batched
    per app: the month's are the tenant's, across tools; the hour's the tool's."""
    pending_counts().add((tenant_id, hour_of(now()), tool), amounts)


def count_read(tenant_id: str, entry_hash: str) -> None:
    """One GET served from this cache entry (its read_count, batched)."""
    pending_counts().add_read(tenant_id, entry_hash)


def flush_if_due() -> None:
    """Flush when FLUSH_SECONDS have passed since the last flush; a failure
    is logged, never raised: counters must not fail the request they follow."""
    if pending_counts().due():
        try:
            flush_counts()
        except Exception:
            log.exception("could not write usage counters")


def start_background_flush(app) -> None:
    """Flush every FLUSH_SECONDS from a daemon thread, so a worker that goes
    quiet still publishes what it counted (started by gunicorn.conf.py)."""

    def flush_forever() -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            flush_in(app)

    threading.Thread(target=flush_forever, name="hoard-usage-flush", daemon=True).start()


def flush_in(app) -> None:
    """Flush with the app's context, logging instead of raising: counters must
    never take a worker down."""
    with app.app_context():
        try:
            flush_counts()
        except Exception:
            log.exception("could not write usage counters")


def count_request(tenant_id: str) -> None:
    count(tenant_id, requests=1)


def key_used(digest: str) -> None:
    """Note that the key with this digest answered a request; written with
    the next flush, at most once per KEY_USE_SECONDS per key and process."""
    pending_counts().note_key(digest)


# Never moves last_used_at backwards (another process may have written later).
_KEY_USED = (
    update(ApiKey)
    .where(
        ApiKey.digest == bindparam("b_digest"),
        (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < bindparam("b_at")),
    )
    .values(last_used_at=bindparam("b_at"))
)


def flush_counts() -> None:
    """Write the app's pending counts to the database, in a transaction
    of their own: never the session of the request being answered, whose
    state is not theirs to commit. Counts that could not be written are kept
    for the next flush."""
    pending = pending_counts()
    batch, reads = pending.take()
    key_uses = pending.take_key_uses()
    if not batch and not reads and not key_uses:
        return
    try:
        with db.engine.begin() as connection:
            months: dict[tuple[str, str], Counter] = {}
            for (tenant_id, hour, tool), amounts in sorted(batch.items()):
                months.setdefault((tenant_id, hour.strftime("%Y-%m")), Counter()).update(
                    {name: amounts[name] for name in COUNTERS if amounts.get(name)}
                )
                hourly = {
                    HOURLY[name]: amount for name, amount in amounts.items() if name in HOURLY and amount
                }
                if hourly:
                    add_hour(connection, tenant_id, hour, hourly, tool=tool)
            for (tenant_id, month), amounts in sorted(months.items()):
                if amounts:
                    _add(connection, tenant_id, month, amounts)
            if reads:
                # In key order, so concurrent flushes lock rows in one order.
                connection.execute(
                    ADD_READS,
                    [{"b_tenant_id": t, "b_hash": h, "b_reads": n} for (t, h), n in sorted(reads.items())],
                )
            if key_uses:
                connection.execute(
                    _KEY_USED, [{"b_digest": d, "b_at": at} for d, at in sorted(key_uses.items())]
                )
    except BaseException:
        pending.put_back(batch, reads, key_uses)
        raise


ADD_READS = (
    update(CacheEntry)
    .where(CacheEntry.tenant_id == bindparam("b_tenant_id"), CacheEntry.hash == bindparam("b_hash"))
    .values(read_count=CacheEntry.read_count + bindparam("b_reads"))
)


# Counters stop at a ceiling rather than overflow their 64-bit columns (a
# 500 on every later flush). An hour's row is summed with up to 90 days of
# others (2,160 hours) for each tool, so its ceiling leaves those sums room:
# 2^49 ms is 17,800 years saved in an hour, 2^49 bytes 156 GB/s for the hour.
MONTH_COUNTER_CEILING = 2**62
HOUR_COUNTER_CEILING = 2**49


def _add(connection, tenant_id: str, month: str, amounts: dict[str, int]) -> None:
    _upsert(
        connection,
        UsageMonth,
        {"tenant_id": tenant_id, "month": month},
        amounts,
        COUNTERS,
        ceiling=MONTH_COUNTER_CEILING,
    )


def add_hour(
    connection, tenant_id: str, hour: datetime, amounts: dict[str, int], *, tool: str = TURBO
) -> None:
    """Add to a tenant's UsageHour row for the tool, creating it (all other counters 0)."""
    _upsert(
        connection,
        UsageHour,
        {"tenant_id": tenant_id, "hour": hour, "tool": tool},
        amounts,
        HOUR_COUNTERS,
        ceiling=HOUR_COUNTER_CEILING,
    )


def _upsert(
    connection, model, slot: dict, amounts: dict[str, int], counters: tuple[str, ...], *, ceiling: int
) -> None:
    """Add `amounts` to the row of `model` that `slot` names, creating it with
    every other counter at 0, each counter stopping at `ceiling`; portable,
    so no ON CONFLICT."""
    amounts = {name: min(amount, ceiling) for name, amount in amounts.items()}
    # Compared before adding: the sum itself would overflow on PostgreSQL.
    increment = (
        update(model)
        .where(*(getattr(model, column) == value for column, value in slot.items()))
        .values(
            {
                name: case(
                    (getattr(model, name) > ceiling - amount, ceiling), else_=getattr(model, name) + amount
                )
                for name, amount in amounts.items()
            }
        )
    )
    if connection.execute(increment).rowcount:
        return
    try:
        with connection.begin_nested():
            connection.execute(insert(model).values(**slot, **(dict.fromkeys(counters, 0) | amounts)))
    except IntegrityError:
        # Another process created the row first.
        connection.execute(increment)


HOUR_COUNTERS = tuple(
    column.key for column in UsageHour.__table__.columns if column.key not in ("tenant_id", "hour", "tool")
)


def month_usage(tenant: Tenant) -> dict[str, int]:
    """This month's counters for the tenant, including this process's pending ones."""
    flush_counts()
    row = db.session.scalar(
        select(UsageMonth).where(UsageMonth.tenant_id == tenant.id, UsageMonth.month == current_month())
    )
    return {name: int(getattr(row, name) or 0) if row else 0 for name in COUNTERS}


def requests_this_month(tenant: Tenant) -> int:
    return month_usage(tenant)["requests"]
