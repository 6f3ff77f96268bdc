"""The console's figures at a million turbo events and 100,000 cache entries
for one tenant: what each overview period and each build-cache list costs.

    .venv/bin/python bench/console.py [--events 1000000] [--entries 100000] [--repeat 50]
                                      [--server-url postgresql://postgres@127.0.0.1:5432/postgres]
                                      [--database hoard_bench_console] [--keep]

A dedicated PostgreSQL database is created (dropped first if it exists),
migrated to head with the real migrations, and seeded server-side for one
tenant: --events rows in cache_events spread over 90 days, the hourly rollups
those events add up to (usage_hours, one row per hour, as the event route
writes them), and --entries cache entries with varied sizes, read counts and
read times. A second tenant holds as much again, so every query must find the
first tenant's rows among others. Then it times the service calls behind the
console's pages (app/services/insight.py) and, when the console is present,
the pages themselves through the Flask test client, signed in with an admin
key. Figures are wall-clock milliseconds, median and p95 over --repeat runs
after a warm-up.
"""

import argparse
import statistics
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.extensions import db  # noqa: E402
from app.models import Tenant  # noqa: E402
from app.services import insight, tenants  # noqa: E402
from bench.listing import p95, scratch_app, step, timed  # noqa: E402

DAYS = 90  # the 90d period: today and the 89 days before it
SEED_EVENTS = """
INSERT INTO cache_events (tenant_id, session_id, source, event, hash, duration_ms, client_ci,
                          client_interactive, created_at)
SELECT %(tenant)s, 's' || (k / 10), CASE WHEN k %% 3 = 0 THEN 'LOCAL' ELSE 'REMOTE' END,
       CASE WHEN k %% 4 = 0 THEN 'MISS' ELSE 'HIT' END, lpad(to_hex(k), 16, '0'),
       CASE WHEN k %% 4 = 0 THEN NULL ELSE 100 + k %% 5000 END,
       CASE WHEN k %% 2 = 0 THEN 'GITHUB_ACTIONS' END, k %% 2 = 1,
       (now() AT TIME ZONE 'UTC') - make_interval(secs => (k::bigint * %(span)s / %(rows)s))
FROM generate_series(1, %(rows)s) AS k
"""
# The rollups of exactly those events, grouped by hour as the event route adds them.
SEED_HOURS = """
INSERT INTO usage_hours (tenant_id, hour, tool, remote_hits, remote_misses, local_hits, local_misses,
                         remote_saved_ms, local_saved_ms, ci_events, interactive_events, other_events,
                         lookups_hit, lookups_miss, uploads, bytes_uploaded, bytes_served)
SELECT tenant_id, date_trunc('hour', created_at), 'turbo',
       count(*) FILTER (WHERE source = 'REMOTE' AND event = 'HIT'),
       count(*) FILTER (WHERE source = 'REMOTE' AND event = 'MISS'),
       count(*) FILTER (WHERE source = 'LOCAL' AND event = 'HIT'),
       count(*) FILTER (WHERE source = 'LOCAL' AND event = 'MISS'),
       coalesce(sum(duration_ms) FILTER (WHERE source = 'REMOTE' AND event = 'HIT'), 0),
       coalesce(sum(duration_ms) FILTER (WHERE source = 'LOCAL' AND event = 'HIT'), 0),
       count(*) FILTER (WHERE client_ci IS NOT NULL),
       count(*) FILTER (WHERE client_ci IS NULL AND client_interactive),
       count(*) FILTER (WHERE client_ci IS NULL AND NOT client_interactive),
       count(*) FILTER (WHERE event = 'HIT'), count(*) FILTER (WHERE event = 'MISS'),
       count(*) / 10, count(*) * 1000, count(*) * 5000
FROM cache_events WHERE tenant_id = %(tenant)s
GROUP BY tenant_id, date_trunc('hour', created_at)
"""
SEED_ENTRIES = """
INSERT INTO cache_entries (tenant_id, hash, storage_key, size_bytes, duration_ms, read_count,
                           created_at, last_read_at)
SELECT %(tenant)s, lpad(to_hex(k), 16, '0'), 'bench/c/' || k, 1 + mod(k::bigint * 104729, 50000000),
       1000, mod(k::bigint * 7919, 10000), (now() AT TIME ZONE 'UTC') - interval '40 days',
       (now() AT TIME ZONE 'UTC') - make_interval(secs => mod(k::bigint * 15485863, 2592000))
FROM generate_series(1, %(rows)s) AS k
"""
PAGES = (
    "/console/?range=24h",
    "/console/?range=7d",
    "/console/?range=30d",
    "/console/?range=90d",
    "/console/cache",
    "/console/artifacts",
    "/console/sessions",
    "/console/keys",
)


def seed(plain_url: str, tenant_id: str, events: int, entries: int) -> None:
    with psycopg.connect(plain_url) as conn:
        with step(f"seed {events:,} events over {DAYS} days"):
            conn.execute(SEED_EVENTS, {"tenant": tenant_id, "rows": events, "span": (DAYS - 1) * 86400})
        with step("seed their hourly rollups"):
            conn.execute(SEED_HOURS, {"tenant": tenant_id})
        with step(f"seed {entries:,} cache entries"):
            conn.execute(SEED_ENTRIES, {"tenant": tenant_id, "rows": entries})
        conn.commit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--server-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="hoard_bench_console")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    with scratch_app(args.server_url, args.database, keep=args.keep) as (app, url):
        with app.app_context():
            tenant_ids = [tenants.create_tenant(slug).id for slug in ("bench", "neighbour")]
            tenant = db.session.get(Tenant, tenant_ids[0])
            key = _admin_key(tenant)
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        for tenant_id in tenant_ids:
            seed(plain, tenant_id, args.events, args.entries)
        with psycopg.connect(plain, autocommit=True) as conn, step("VACUUM ANALYZE"):
            conn.execute("VACUUM ANALYZE")

        with app.app_context():
            tenant = db.session.get(Tenant, tenant_ids[0])
            figures = insight.overview(tenant, "90d").totals
            events_seen = sum(
                getattr(figures, name)
                for name in ("remote_hits", "remote_misses", "local_hits", "local_misses")
            )
            assert events_seen == args.events, f"rollups hold {events_seen} events"
            cases = [
                (f"insight.overview {period}", _call(insight.overview, tenant, period))
                for period in insight.PERIODS
            ]
            cases += [
                ("insight.largest_entries", _call(insight.largest_entries, tenant)),
                ("insight.most_read_entries", _call(insight.most_read_entries, tenant)),
                ("insight.evicting_soon", _call(insight.evicting_soon, tenant)),
            ]
            cases += _page_cases(app, key)
            print(f"\n{args.events:,} events + {args.entries:,} cache entries per tenant, 2 tenants; ms")
            print(f"{'case':34} {'median':>8} {'p95':>8}")
            for label, call in cases:
                samples = timed(call, args.repeat)
                print(f"{label:34} {statistics.median(samples):8.2f} {p95(samples):8.2f}")
    return 0


def _call(function, *args):
    return lambda: function(*args)


def _admin_key(tenant: Tenant) -> str:
    try:
        _, key = tenants.create_key(tenant, admin=True)
    except TypeError:  # before keys had roles
        _, key = tenants.create_key(tenant)
    return key


def _page_cases(app, key: str) -> list:
    """The console's pages, signed in, when the console is there."""
    client = app.test_client()
    if client.get("/").status_code != 200:
        print("(no console at /: pages not timed)")
        return []
    signed_in = client.post("/", data={"key": key, "csrf_token": _csrf_token(client)})
    assert signed_in.status_code in (302, 303), signed_in.status_code

    def page(path: str):
        def call() -> None:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)

        return call

    return [(f"GET {path}", page(path)) for path in PAGES]


def _csrf_token(client) -> str:
    import re

    html = client.get("/").get_data(as_text=True)
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    return found.group(1) if found else ""


if __name__ == "__main__":
    sys.exit(main())
