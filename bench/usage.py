"""Storage figures at a million blobs and a million cache entries per tenant:
what whoami, the cache status and an upload's quota check cost.

    .venv/bin/python bench/usage.py [--rows 1000000] [--repeat 50]
                                    [--server-url postgresql://postgres@127.0.0.1:5432/postgres]
                                    [--database hoard_bench_usage] [--keep]

A dedicated PostgreSQL database is created (dropped first if it exists),
migrated to head with the real migrations, and seeded server-side with
--rows blobs and --rows cache entries for one tenant (the triggers that keep
the tenant's totals run for every seeded row). Then it times, in one app
context bound to that database: the stored-bytes read the services use
(`usage.storage_bytes`, one row), the sums it replaced (for comparison), and
through the Flask test client `GET /v1/whoami`, `GET /v8/artifacts/status`
and a 1 KiB `PUT /v8/artifacts/<hash>` under a storage quota. Figures are
wall-clock milliseconds, median and p95 over --repeat runs after a warm-up.
"""

import argparse
import statistics
import sys
from pathlib import Path

import psycopg
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.extensions import db  # noqa: E402
from app.models import Blob, CacheEntry, Tenant  # noqa: E402
from app.services import tenants, usage  # noqa: E402
from bench.listing import p95, scratch_app, step, timed  # noqa: E402

SEED_BLOBS = """
INSERT INTO blobs (tenant_id, content_hash, size_bytes, storage_key, created_at)
SELECT %(tenant)s, md5('b' || k) || md5('c' || k), 1 + mod(k::bigint * 7919, 5000000), 'bench/b/' || k, now()
FROM generate_series(1, %(rows)s) AS k
"""
SEED_CACHE = """
INSERT INTO cache_entries (tenant_id, hash, storage_key, size_bytes, duration_ms, created_at, last_read_at)
SELECT %(tenant)s, lpad(to_hex(k), 16, '0'), 'bench/c/' || k,
       1 + mod(k::bigint * 104729, 50000000), 1000, now(), now()
FROM generate_series(1, %(rows)s) AS k
"""


def summed_storage_bytes(tenant_id: str) -> int:
    """What usage.storage_bytes did before the totals: a sum over every row."""
    blobs = db.session.scalar(
        select(func.coalesce(func.sum(Blob.size_bytes), 0)).where(Blob.tenant_id == tenant_id)
    )
    cache = db.session.scalar(
        select(func.coalesce(func.sum(CacheEntry.size_bytes), 0)).where(CacheEntry.tenant_id == tenant_id)
    )
    return int(blobs) + int(cache)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="blobs, and cache entries, of the tenant")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--server-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="hoard_bench_usage")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    with scratch_app(args.server_url, args.database, keep=args.keep) as (app, url):
        with app.app_context():
            tenant = tenants.create_tenant("bench")
            _, key = tenants.create_key(tenant)
            tenant_id = tenant.id
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain) as conn:
            with step(f"seed {args.rows:,} blobs"):
                conn.execute(SEED_BLOBS, {"tenant": tenant_id, "rows": args.rows})
            with step(f"seed {args.rows:,} cache entries"):
                conn.execute(SEED_CACHE, {"tenant": tenant_id, "rows": args.rows})
            conn.commit()
        with psycopg.connect(plain, autocommit=True) as conn, step("VACUUM ANALYZE"):
            conn.execute("VACUUM ANALYZE")

        client = app.test_client()
        auth = {"Authorization": f"Bearer {key}"}
        with app.app_context():
            tenant = db.session.get(Tenant, tenant_id)
            assert usage.storage_bytes(tenant) == summed_storage_bytes(tenant_id), "totals differ from sums"
            quota = usage.storage_bytes(tenant) + 10**12
            tenants.update_tenant(tenant, storage_quota_bytes=quota)
            counter = iter(range(10**9))

            def put() -> None:
                response = client.put(f"/v8/artifacts/bench{next(counter)}", data=b"x" * 1024, headers=auth)
                assert response.status_code == 202, response.get_data()

            def get(path: str):
                def call() -> None:
                    assert client.get(path, headers=auth).status_code == 200

                return call

            cases = [
                ("usage.storage_bytes (one row)", lambda: usage.storage_bytes(tenant)),
                ("sum over every row (before)", lambda: summed_storage_bytes(tenant_id)),
                ("GET /v1/whoami", get("/v1/whoami")),
                ("GET /v8/artifacts/status", get("/v8/artifacts/status")),
                ("PUT 1 KiB under a quota", put),
            ]
            print(f"\n{args.rows:,} blobs + {args.rows:,} cache entries; {args.repeat} runs each, ms")
            print(f"{'case':34} {'median':>8} {'p95':>8}")
            for label, call in cases:
                repeat = args.repeat if "before" not in label else max(3, args.repeat // 10)
                samples = timed(call, repeat)
                print(f"{label:34} {statistics.median(samples):8.2f} {p95(samples):8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
