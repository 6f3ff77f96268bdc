"""GET /v1/artifacts at a million artifacts per tenant: the first page and a
page deep in the cursor walk, per filter, timed through the service and
through the HTTP API.

    .venv/bin/python bench/listing.py [--rows 1000000] [--other-rows 200000] [--repeat 20]
                                      [--server-url postgresql://postgres@127.0.0.1:5432/postgres]
                                      [--database hoard_bench_listing] [--keep] [--plans]

A dedicated PostgreSQL database is created (dropped first if it exists),
migrated to head with the real migrations (flask_migrate.upgrade), and seeded
server-side with INSERT ... SELECT over generate_series: --rows artifacts for
the tenant under test plus --other-rows for a second tenant, 45 days of
uploads in groups of five sharing one created_at, ~20k small sessions and one
long-running session, 200 agents with a skewed popularity, a `stage` metadata
key on 40% of rows (mirrored into artifact_meta), and TTL classes whose oldest
members have expired (nothing collects expired rows yet), plus 3% deleted.
Then ANALYZE.

Each case runs app.services.artifacts.reads.list_artifacts in an app context bound to
that database, and GET /v1/artifacts through the Flask test client (auth,
parsing, serialisation; the rate limiter is off so repetitions are not 429s).
Figures are wall-clock milliseconds: the median and the p95 (nearest rank)
over --repeat runs after one warm-up. Every case ends with a summary of the
EXPLAIN (ANALYZE, BUFFERS) plan of the exact statement the service sent.
The database is dropped at the end unless --keep.
"""

import argparse
import math
import re
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import psycopg
from flask_migrate import upgrade
from sqlalchemy import event, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.api import serializers  # noqa: E402
from app.clock import now  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Artifact, Tenant  # noqa: E402
from app.services import cursors, tenants  # noqa: E402
from app.services.artifacts import reads  # noqa: E402

SPAN = timedelta(days=45)
SAME_TIMESTAMP = 5  # consecutive uploads that share one created_at
PAGE = 50  # the SDK's and the MCP's page size
SLOW_MS = 50.0
MAIN_FROM = re.compile(r"\sFROM artifacts\b")
# How SQLAlchemy renders list_artifacts' keyset predicate for PostgreSQL.
KEYSET_OR = re.compile(
    r"\(artifacts\.created_at < (?P<at>%\(\w+\)s::TIMESTAMP WITHOUT TIME ZONE) "
    r"OR artifacts\.created_at = %\(\w+\)s::TIMESTAMP WITHOUT TIME ZONE "
    r"AND artifacts\.id < (?P<id>%\(\w+\)s::VARCHAR)\)"
)

# One statement per tenant; random() is evaluated once per row because a
# subquery with volatile outputs is never flattened into its parent.
SEED_BLOBS = """
INSERT INTO blobs (id, tenant_id, content_hash, size_bytes, storage_key, created_at)
SELECT %(blob_base)s + k, %(tenant)s,
       md5(%(salt)s || 'b' || k) || md5(%(salt)s || 'c' || k),
       1 + mod(k::bigint * 7919, 5000000), 'bench/' || %(salt)s || '/' || k, %(t0)s
FROM generate_series(1, %(blobs)s) AS k
"""
SEED_ARTIFACTS = """
INSERT INTO artifacts (id, tenant_id, blob_id, filename, content_type, size_bytes, content_hash,
                       session_id, agent_id, metadata, status, created_at, expires_at, deleted_at)
SELECT 'art_' || substr(md5(%(salt)s || i), 1, 16),
       %(tenant)s,
       CASE WHEN pending THEN NULL ELSE %(blob_base)s + blob END,
       (ARRAY['report.json', 'model.bin', 'build.log', 'metrics.csv', 'plot.png'])[1 + mod(i, 5)],
       (ARRAY['application/json', 'application/octet-stream', 'text/plain', 'text/csv',
              'image/png'])[1 + mod(i, 5)],
       size,
       CASE WHEN pending THEN NULL ELSE md5(%(salt)s || 'b' || blob) || md5(%(salt)s || 'c' || blob) END,
       CASE WHEN r_session < 0.10 THEN 'ses_longrunning'
            WHEN r_session < 0.25 THEN NULL
            ELSE 'ses_' || lpad(((i - 1) / 40)::text, 6, '0') END,
       CASE WHEN r_agent < 0.20 THEN NULL
            ELSE 'agent-' || floor(200 * power((r_agent - 0.20) / 0.80, 2))::int END,
       json_strip_nulls(json_build_object(
           'stage', CASE WHEN r_stage < 0.04 THEN 'final' WHEN r_stage < 0.16 THEN 'review'
                         WHEN r_stage < 0.40 THEN 'draft' END,
           'commit', CASE WHEN r_commit < 0.10 THEN substr(md5(%(salt)s || 'run' || (i / 200)), 1, 12) END)),
       CASE WHEN pending THEN 'pending' ELSE 'active' END,
       created_at,
       CASE WHEN r_ttl < 0.60 THEN created_at + interval '30 days'
            WHEN r_ttl < 0.80 THEN created_at + interval '7 days'
            WHEN r_ttl < 0.90 THEN created_at + interval '90 days' END,
       CASE WHEN r_deleted < 0.03 THEN least(created_at + interval '1 hour', %(now)s) END
FROM (
    SELECT i,
           %(t0)s + make_interval(secs => ((i - 1) / %(same)s) * %(step)s) AS created_at,
           random() AS r_session, random() AS r_agent, random() AS r_stage, random() AS r_commit,
           random() AS r_ttl, random() AS r_deleted, random() < 0.001 AS pending,
           1 + mod(i * 7, %(blobs)s) AS blob,
           1 + floor(random() * 5000000)::bigint AS size
    FROM generate_series(1, %(rows)s) AS i
) AS g
"""
SEED_META = """
INSERT INTO artifact_meta (artifact_id, key, tenant_id, value)
SELECT a.id, kv.key, a.tenant_id, kv.value FROM artifacts AS a, json_each_text(a.metadata) AS kv
"""
SEED_SESSIONS = """
INSERT INTO sessions (tenant_id, session_id, artifact_count, first_artifact_at, last_artifact_at)
SELECT tenant_id, session_id, count(*), min(created_at), max(created_at)
FROM artifacts WHERE session_id IS NOT NULL GROUP BY tenant_id, session_id
"""


@dataclass
class Case:
    name: str
    filters: reads.ListFilters
    query: dict
    deep: bool = True  # also time a page half-way down this filter's walk


@dataclass
class Result:
    case: str
    page: str
    position: int
    service_ms: list[float]
    http_ms: list[float]
    plan: "Plan"
    what_if: "Plan | None"  # the same statement with a row-comparison cursor


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def timed(call, repeat: int) -> list[float]:
    call()  # warm-up: plan cache, pooled connection, buffers
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


@contextmanager
def step(label: str):
    print(f"{label} ...", end=" ", flush=True)
    start = time.perf_counter()
    yield
    print(f"{time.perf_counter() - start:.1f} s", flush=True)


# -- database ------------------------------------------------------------------


def admin_execute(server_url: str, statement: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(statement)


def database_url(server_url: str, name: str) -> str:
    return server_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name


@contextmanager
def scratch_app(server_url: str, database: str, *, keep: bool):
    """A Hoard app on a new PostgreSQL database (dropped first if it exists)
    migrated to head, with throwaway local storage and no rate limits; the
    database is dropped afterwards unless `keep`. Yields (app, database URL)."""
    url = database_url(server_url, database)
    admin_execute(server_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    admin_execute(server_url, f'CREATE DATABASE "{database}"')
    try:
        with tempfile.TemporaryDirectory() as scratch:
            app = create_app(
                {
                    "SQLALCHEMY_DATABASE_URI": url,
                    "STORAGE_BACKEND": "local",
                    "STORAGE_LOCAL_ROOT": scratch,
                    "RATELIMIT_ENABLED": False,
                    "LOG_LEVEL": "WARNING",
                }
            )
            with app.app_context(), step("migrate to head"):
                upgrade(directory=app.config["MIGRATIONS_DIR"])
            yield app, url
            with app.app_context():
                db.engine.dispose()
    finally:
        if not keep:
            admin_execute(server_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def seed(url: str, tenant_ids: list[tuple[str, int]]) -> float:
    """Seed every (tenant id, rows) pair and ANALYZE; returns the seconds taken."""
    started = time.perf_counter()
    current = now()
    t0 = current - SPAN - timedelta(minutes=1)
    blob_base = 0
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("SELECT setseed(0.42)")
        for index, (tenant_id, rows) in enumerate(tenant_ids):
            blobs = max(1, rows * 3 // 10)
            params = {
                "tenant": tenant_id,
                "salt": f"t{index}-",
                "rows": rows,
                "blobs": blobs,
                "blob_base": blob_base,
                "t0": t0,
                "now": current,
                "same": SAME_TIMESTAMP,
                "step": SPAN.total_seconds() / math.ceil(rows / SAME_TIMESTAMP),
            }
            with step(f"  {tenant_id}: {blobs:,} blobs"):
                conn.execute(SEED_BLOBS, params)
            with step(f"  {tenant_id}: {rows:,} artifacts"):
                conn.execute(SEED_ARTIFACTS, params)
            blob_base += blobs
        conn.execute("SELECT setval(pg_get_serial_sequence('blobs', 'id'), %s)", (blob_base,))
        with step("  artifact_meta from the artifacts' metadata"):
            conn.execute(SEED_META)
        with step("  sessions"):
            conn.execute(SEED_SESSIONS)
        conn.commit()
    plain_url = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain_url, autocommit=True) as conn, step("  VACUUM ANALYZE"):
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def describe(tenant: Tenant) -> None:
    """Print what the tenant's rows look like, so the figures can be read."""
    stats = db.session.execute(
        text(
            """
            SELECT count(*),
                   count(*) FILTER (WHERE deleted_at IS NULL AND (expires_at IS NULL OR expires_at > :now)),
                   count(*) FILTER (WHERE deleted_at IS NOT NULL),
                   count(*) FILTER (WHERE deleted_at IS NULL AND expires_at <= :now),
                   count(DISTINCT created_at), count(DISTINCT session_id), count(DISTINCT agent_id)
            FROM artifacts WHERE tenant_id = :tenant
            """
        ),
        {"tenant": tenant.id, "now": now()},
    ).one()
    meta = db.session.execute(
        text(
            "SELECT key, value, count(*) FROM artifact_meta WHERE tenant_id = :t "
            "GROUP BY 1, 2 ORDER BY 3 DESC"
        ),
        {"t": tenant.id},
    ).all()
    total, live, deleted, expired, stamps, sessions, agents = stats
    print(
        f"tenant {tenant.id}: {total:,} artifacts, {live:,} live, {deleted:,} deleted, "
        f"{expired:,} expired (not collected); {stamps:,} distinct created_at, "
        f"{sessions:,} sessions, {agents:,} agents"
    )
    stage = ", ".join(f"{value} {count:,}" for key, value, count in meta if key == "stage")
    commits = sum(count for key, _, count in meta if key == "commit")
    print(f"artifact_meta: stage = {stage}; commit on {commits:,} rows")


# -- cases ---------------------------------------------------------------------------


def cases(tenant: Tenant) -> list[Case]:
    small_session = db.session.scalar(
        text(
            "SELECT session_id FROM artifacts WHERE tenant_id = :t AND session_id LIKE 'ses_0%' "
            "GROUP BY session_id ORDER BY count(*) DESC, session_id LIMIT 1"
        ),
        {"t": tenant.id},
    )

    def case(name: str, deep: bool = True, **query: str) -> Case:
        metadata = {
            key[len("metadata.") :]: value for key, value in query.items() if key.startswith("metadata.")
        }
        filters = reads.ListFilters(
            session_id=query.get("session_id"), agent_id=query.get("agent_id"), metadata=metadata or None
        )
        return Case(name, filters, query, deep)

    return [
        case("no filter"),
        case("session_id (long-running)", session_id="ses_longrunning"),
        case(f"session_id (small: {small_session})", deep=False, session_id=small_session),
        case("agent_id", agent_id="agent-10"),
        case("metadata.stage=final", **{"metadata.stage": "final"}),
        case("agent + metadata", agent_id="agent-10", **{"metadata.stage": "final"}),
    ]


def listing_from(tenant: Tenant, filters: reads.ListFilters) -> tuple[str, dict]:
    """The service's own `artifacts ... WHERE ... ORDER BY ...` for this filter
    (no cursor, no LIMIT) and its parameters, so counts and offsets use exactly
    the statement being timed."""
    sql, params = capture(lambda: reads.list_artifacts(tenant, filters=filters, limit=1, after=None))
    tail = MAIN_FROM.split(sql, maxsplit=1)[1]
    return "artifacts" + tail.rsplit("LIMIT", 1)[0], params


def live_count(tenant: Tenant, filters: reads.ListFilters) -> int:
    body, params = listing_from(tenant, filters)
    body = body.rsplit("ORDER BY", 1)[0]
    return db.session.connection().exec_driver_sql(f"SELECT count(*) FROM {body}", params).scalar()


def after_row(row: Artifact) -> cursors.Position:
    """The listing position just after `row`."""
    return (row.created_at, row.id)


def row_at(tenant: Tenant, filters: reads.ListFilters, position: int) -> Artifact:
    """The artifact at `position` (0-based) in the filter's listing order."""
    body, params = listing_from(tenant, filters)
    sql = f"SELECT artifacts.id FROM {body} OFFSET {int(position)} LIMIT 1"
    artifact_id = db.session.connection().exec_driver_sql(sql, params).scalar_one()
    return db.session.get(Artifact, artifact_id)


def capture(call) -> tuple[str, dict]:
    """The SELECT on artifacts that `call` sends, with its parameters."""
    seen = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        if MAIN_FROM.search(statement):
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        call()
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)
    return seen[-1]


@dataclass
class Plan:
    summary: str
    ms: float  # EXPLAIN ANALYZE's execution time
    text: str


def explain(sql: str, params: dict) -> Plan:
    """EXPLAIN (ANALYZE, BUFFERS) of one statement, with a one-line summary."""
    connection = db.session.connection()
    as_json = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", params).scalar()
    as_text = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params).scalars().all()
    db.session.rollback()
    top = as_json[0]
    nodes = []

    def walk(node: dict) -> None:
        nodes.append(node)
        for child in node.get("Plans", []):
            walk(child)

    walk(top["Plan"])
    parts = []
    for node in nodes:
        kind = node["Node Type"]
        if "Index Name" in node:
            direction = " Backward" if node.get("Scan Direction") == "Backward" else ""
            parts.append(f"{kind}{direction} {node['Index Name']}")
        elif kind in ("Seq Scan", "Bitmap Heap Scan"):
            parts.append(f"{kind} {node['Relation Name']}")
        elif kind in ("Sort", "Incremental Sort", "Hash Join", "Merge Join") or "Semi" in node.get(
            "Join Type", ""
        ):
            parts.append(kind)
    removed = sum(node.get("Rows Removed by Filter", 0) * node.get("Actual Loops", 1) for node in nodes)
    buffers = top["Plan"].get("Shared Hit Blocks", 0) + top["Plan"].get("Shared Read Blocks", 0)
    summary = f"{' > '.join(parts)}; rows removed by filter {removed:,}; buffers {buffers:,}"
    return Plan(summary, top["Execution Time"], "\n".join(as_text))


def row_comparison(sql: str) -> str | None:
    """The statement with its keyset predicate written as one row comparison,
    `(created_at, id) < (:at, :id)`, which PostgreSQL can use as an index
    bound; None when the statement has no cursor."""
    rewritten, count = KEYSET_OR.subn(r"((artifacts.created_at, artifacts.id) < (\g<at>, \g<id>))", sql)
    return rewritten if count == 1 else None


# -- run ---------------------------------------------------------------------------


def run_cases(app, tenant: Tenant, key: str, repeat: int) -> list[Result]:
    """Time every case. Each service call gets its own app context, as a request
    would (a fresh session, removed at teardown); the test client's requests
    run with no context pushed, so they make their own."""
    client = app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    results = []
    with app.app_context():
        planned = cases(tenant)
    for case in planned:
        pages = [("first", 0, None)]
        with app.app_context():
            total = live_count(tenant, case.filters)
            if case.deep and total > 4 * PAGE:
                position = total // 2
                pages.append(("deep", position, after_row(row_at(tenant, case.filters, position - 1))))
                # The walk's last page, where every dead row further down is read.
                position = total - PAGE // 2
                pages.append(("last", position, after_row(row_at(tenant, case.filters, position - 1))))
        for page, position, after in pages:

            def list_page(after=after, case=case) -> cursors.Page:
                return reads.list_artifacts(tenant, filters=case.filters, limit=PAGE, after=after)

            def service(list_page=list_page) -> list[str]:
                with app.app_context():
                    return [item.id for item in list_page().items]

            query = {"limit": PAGE, **case.query, **({"cursor": serializers.cursor(after)} if after else {})}

            def http(url="/v1/artifacts?" + urlencode(query)) -> list[str]:
                response = client.get(url, headers=auth)
                assert response.status_code == 200, response.get_data(as_text=True)
                return [item["artifact_id"] for item in response.json["artifacts"]]

            assert http() == service(), case.name
            service_ms = timed(service, repeat)
            http_ms = timed(http, repeat)
            with app.app_context():
                sql, params = capture(list_page)
                plan = explain(sql, params)
                rewritten = row_comparison(sql)
                what_if = explain(rewritten, params) if rewritten else None
            results.append(Result(case.name, page, position, service_ms, http_ms, plan, what_if))
            print(
                f"  {case.name:<32} {page:<5} service {statistics.median(service_ms):7.1f} ms  "
                f"http {statistics.median(http_ms):7.1f} ms",
                flush=True,
            )
    return results


def report(results: list[Result], *, show_plans: bool) -> None:
    print()
    header = (
        f"{'case':<32} {'page':<5} {'at row':>8}  {'service med':>11} {'p95':>6}  {'http med':>8} {'p95':>6}"
        f"  {'EXPLAIN':>7}  {'row-cmp':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.case:<32} {r.page:<5} {r.position:>8,}  {statistics.median(r.service_ms):>11.1f} "
            f"{p95(r.service_ms):>6.1f}  {statistics.median(r.http_ms):>8.1f} {p95(r.http_ms):>6.1f}  "
            f"{r.plan.ms:>7.1f}  {f'{r.what_if.ms:.1f}' if r.what_if else '-':>7}"
        )
    print(
        "\nms; median and p95 (nearest rank). EXPLAIN: EXPLAIN ANALYZE execution time of the statement the "
        "service sent.\nrow-cmp: the same statement with the cursor predicate as "
        "(created_at, id) < (:at, :id) -- a what-if, not what Hoard sends."
    )
    print("\nplans (nodes in tree order):")
    for r in results:
        print(f"- {r.case} / {r.page}: {r.plan.summary}")
        if r.what_if:
            print(f"  row-cmp: {r.what_if.summary}")
    slow = [r for r in results if statistics.median(r.http_ms) > SLOW_MS]
    if slow:
        print(f"\nover {SLOW_MS:.0f} ms (http median): " + "; ".join(f"{r.case} / {r.page}" for r in slow))
    for r in results if show_plans else slow:
        print(f"\n== {r.case} / {r.page} ==\n{r.plan.text}")
        if r.what_if:
            print(f"-- row-cmp what-if --\n{r.what_if.text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="artifacts of the tenant under test")
    parser.add_argument("--other-rows", type=int, default=200_000, help="artifacts of a second tenant")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per case (after one warm-up)")
    parser.add_argument("--server-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="hoard_bench_listing")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--plans", action="store_true", help="print every full EXPLAIN ANALYZE plan")
    args = parser.parse_args()

    with scratch_app(args.server_url, args.database, keep=args.keep) as (app, url):
        with app.app_context():
            bench = tenants.create_tenant("bench")
            _, key = tenants.create_key(bench)
            other = tenants.create_tenant("bench-other")
            # Only the id is read by the service: a plain, session-free copy.
            tenant = Tenant(id=bench.id, slug=bench.slug, name=bench.name, plan=bench.plan)
            pairs = [(bench.id, args.rows)] + ([(other.id, args.other_rows)] if args.other_rows else [])
        print(f"seeding {args.rows:,} + {args.other_rows:,} artifacts into {args.database}")
        seconds = seed(url, pairs)
        print(f"seeding took {seconds:.1f} s ({args.rows + args.other_rows:,} artifact rows)")
        with app.app_context():
            describe(tenant)
        print(f"timing {args.repeat} runs per case after one warm-up (page size {PAGE}):")
        results = run_cases(app, tenant, key, args.repeat)
        report(results, show_plans=args.plans)
    return 0


if __name__ == "__main__":
    sys.exit(main())
