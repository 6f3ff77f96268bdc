"""What GET /metrics answers: every worker's counts, and figures the database keeps.

The request, cache and transfer series (app/metrics.py) are added up across
gunicorn's workers from their files when prometheus_client runs in
multiprocess mode, or read from this process otherwise. Storage per tenant
and gc's totals are read at scrape time from rows kept current as data comes
and goes (the tenant totals the triggers keep, gc_totals): a few rows per
scrape, never a count over every blob or entry.
"""

import hmac
from collections.abc import Iterator
from datetime import UTC

from flask import current_app
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

from .. import metrics
from ..errors import Forbidden, NotFound, Unauthorized
from ..extensions import db
from ..models import GcTotal, Tenant

# kind label -> the tenant columns holding its bytes and objects
STORAGE_KINDS = (
    ("blobs", Tenant.blob_bytes, Tenant.blob_count),
    ("cache", Tenant.cache_bytes, Tenant.cache_count),
)


def scrape(presented_token: str | None) -> tuple[bytes, str]:
    """The exposition and its content type, for a caller holding METRICS_TOKEN.

    404 while metrics are off (as if there were no such route), 401 without a
    token, 403 with another one.
    """
    config = current_app.config
    if not metrics.enabled(current_app) or not config["METRICS_TOKEN"]:
        raise NotFound()
    if presented_token is None:
        raise Unauthorized("A bearer token is required.", headers={"WWW-Authenticate": "Bearer"})
    if not holds_token(presented_token):
        raise Forbidden("This token may not read the metrics.")
    return generate_latest(_Scrape(config)), CONTENT_TYPE_LATEST


def holds_token(presented_token: str | None) -> bool:
    """Whether the caller shows METRICS_TOKEN (compared in constant time)."""
    expected = current_app.config["METRICS_TOKEN"]
    if not (metrics.enabled(current_app) and expected and presented_token is not None):
        return False
    return hmac.compare_digest(presented_token.encode(), expected.encode())


class _Scrape:
    """One scrape's collectors, in the shape generate_latest() reads."""

    def __init__(self, config):
        self.tenant_label_limit = config["METRICS_TENANT_LABEL_LIMIT"]
        if getattr(values.ValueClass, "_multiprocess", False):
            self.processes = CollectorRegistry()
            MultiProcessCollector(self.processes, path=config["METRICS_MULTIPROC_DIR"])
        else:
            self.processes = REGISTRY

    def collect(self) -> Iterator[Metric]:
        yield from self.processes.collect()
        try:
            yield from _storage(self.tenant_label_limit)
            yield from _gc()
        finally:
            db.session.rollback()  # reads only: end the transaction they began


def _storage(tenant_label_limit: int) -> Iterator[Metric]:
    columns = [column for _, *pair in STORAGE_KINDS for column in pair]
    # One row more than the limit tells whether the tenants fit under it.
    rows = (
        db.session.execute(
            select(Tenant.slug, *columns).order_by(Tenant.slug).limit(tenant_label_limit + 1)
        ).all()
        if tenant_label_limit > 0
        else []
    )
    labelled = tenant_label_limit > 0 and len(rows) <= tenant_label_limit
    if labelled:
        tenants, totals = len(rows), [sum(row[i + 1] for row in rows) for i in range(len(columns))]
    else:
        # Past the limit: the totals alone, summed over tenant rows (one per
        # tenant, each kept current by the triggers), never over objects.
        tenants, *totals = db.session.execute(
            select(func.count(), *(func.coalesce(func.sum(column), 0) for column in columns))
        ).one()
    yield GaugeMetricFamily("hoard_tenants", "Tenants.", value=tenants)
    stored_bytes = GaugeMetricFamily(
        "hoard_storage_bytes",
        "Bytes stored, by kind (blobs: artifacts, cache: build cache).",
        labels=("kind",),
    )
    stored_objects = GaugeMetricFamily("hoard_storage_objects", "Objects stored, by kind.", labels=("kind",))
    for index, (kind, *_) in enumerate(STORAGE_KINDS):
        stored_bytes.add_metric((kind,), int(totals[2 * index]))
        stored_objects.add_metric((kind,), int(totals[2 * index + 1]))
    yield stored_bytes
    yield stored_objects
    if not labelled:
        return
    tenant_bytes = GaugeMetricFamily(
        "hoard_tenant_storage_bytes",
        f"Bytes stored per tenant and kind; exported while there are at most {tenant_label_limit} tenants.",
        labels=("tenant", "kind"),
    )
    tenant_objects = GaugeMetricFamily(
        "hoard_tenant_storage_objects",
        f"Objects stored per tenant and kind; exported while there are at most {tenant_label_limit} tenants.",
        labels=("tenant", "kind"),
    )
    for row in rows:
        for index, (kind, *_) in enumerate(STORAGE_KINDS):
            tenant_bytes.add_metric((row.slug, kind), int(row[1 + 2 * index]))
            tenant_objects.add_metric((row.slug, kind), int(row[2 + 2 * index]))
    yield tenant_bytes
    yield tenant_objects


def _gc() -> Iterator[Metric]:
    rows = db.session.execute(select(GcTotal).order_by(GcTotal.category)).scalars().all()
    # Every run adds to every category it inspected, so the most any
    # category saw is the number of runs.
    yield CounterMetricFamily(
        "hoard_gc_runs",
        "Completed gc runs (dry runs excluded).",
        value=max((row.runs for row in rows), default=0),
    )
    removed_objects = CounterMetricFamily(
        "hoard_gc_removed_objects", "Items gc removed, by category.", labels=("category",)
    )
    removed_bytes = CounterMetricFamily(
        "hoard_gc_removed_bytes", "Bytes gc freed, by category.", labels=("category",)
    )
    for row in rows:
        removed_objects.add_metric((row.category,), row.objects)
        removed_bytes.add_metric((row.category,), row.bytes)
    yield removed_objects
    yield removed_bytes
    last = max((row.last_run_at for row in rows if row.last_run_at is not None), default=None)
    if last is not None:
        yield GaugeMetricFamily(
            "hoard_gc_last_run_timestamp_seconds",
            "When the last gc run ended (Unix time).",
            value=last.replace(tzinfo=UTC).timestamp(),
        )
