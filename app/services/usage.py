"""Usage figures shared by quotas, whoami and the cache status."""

import logging
import threading
import time
from collections import Counter

from flask import Flask, current_app
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..clock import now
from ..extensions import db
from ..models import Tenant, ToolUsageMonth, UsageMonth
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
COUNTERS = ("requests", "cache_hits", "cache_misses", "cache_bytes_served", "cache_bytes_uploaded")
TOOL_COUNTERS = COUNTERS[1:]
EXTENSION = "hoard_usage"


class PendingCounts:
    """One app's counts not yet written, and when they were last flushed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # (tenant id, month, tool or None for the tenant's totals) -> counts
        self.by_slot: dict[tuple[str, str, str | None], Counter] = {}
        self.last_flush = time.monotonic()

    def add(self, slot: tuple[str, str, str | None], amounts: dict[str, int]) -> None:
        with self.lock:
            self.by_slot.setdefault(slot, Counter()).update(amounts)

    def put_back(self, batch: dict[tuple[str, str, str | None], Counter]) -> None:
        for slot, amounts in batch.items():
            self.add(slot, amounts)

    def take(self) -> dict[tuple[str, str, str | None], Counter]:
        with self.lock:
            batch, self.by_slot = self.by_slot, {}
        return batch

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


def count(tenant_id: str, *, tool: str | None = None, **amounts: int) -> None:
    """Add to this month's counters (names from COUNTERS), batched per app;
    with a build tool named, to that tool's figures too."""
    pending = pending_counts()
    month = current_month()
    pending.add((tenant_id, month, None), amounts)
    if tool is not None:
        pending.add((tenant_id, month, tool), amounts)


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


def flush_counts() -> None:
    """Write the app's pending counts to the database, in a transaction
    of their own: never the session of the request being answered, whose
    state is not theirs to commit. Counts that could not be written are kept
    for the next flush."""
    pending = pending_counts()
    batch = pending.take()
    if not batch:
        return
    try:
        with db.engine.begin() as connection:
            for (tenant_id, month, tool), amounts in batch.items():
                _add(connection, tenant_id, month, tool, amounts)
    except BaseException:
        pending.put_back(batch)
        raise


def _add(connection, tenant_id: str, month: str, tool: str | None, amounts: Counter) -> None:
    model, slot = UsageMonth, {"tenant_id": tenant_id, "month": month}
    if tool is not None:
        model, slot = ToolUsageMonth, {**slot, "tool": tool}
    increment = (
        update(model)
        .where(*(getattr(model, name) == value for name, value in slot.items()))
        .values({name: getattr(model, name) + amount for name, amount in amounts.items()})
    )
    if connection.execute(increment).rowcount:
        return
    try:
        with connection.begin_nested():
            zeros = {name: 0 for name in (COUNTERS if tool is None else TOOL_COUNTERS)}
            connection.execute(insert(model).values(**slot, **{**zeros, **amounts}))
    except IntegrityError:
        # Another process created this month's row first.
        connection.execute(increment)


def month_usage(tenant: Tenant) -> dict[str, int]:
    """This month's counters for the tenant, including this process's pending ones."""
    flush_counts()
    row = db.session.scalar(
        select(UsageMonth).where(UsageMonth.tenant_id == tenant.id, UsageMonth.month == current_month())
    )
    return {name: int(getattr(row, name) or 0) if row else 0 for name in COUNTERS}


def tool_month_usage(tenant: Tenant) -> dict[str, dict[str, int]]:
    """This month's counters per build tool (names from TOOL_COUNTERS)."""
    flush_counts()
    rows = db.session.scalars(
        select(ToolUsageMonth).where(
            ToolUsageMonth.tenant_id == tenant.id, ToolUsageMonth.month == current_month()
        )
    )
    return {row.tool: {name: int(getattr(row, name) or 0) for name in TOOL_COUNTERS} for row in rows}


def requests_this_month(tenant: Tenant) -> int:
    return month_usage(tenant)["requests"]
