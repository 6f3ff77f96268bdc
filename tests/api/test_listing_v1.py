"""GET /v1/artifacts: filters, bounds, cursors, and keyset pagination over
a thousand artifacts, many sharing one created_at."""

import base64
import json
import secrets
import string
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert

from app.extensions import db
from app.models import Artifact, ArtifactMeta
from tests import clock
from tests.api import helpers_v1 as v1
from tests.api.helpers_v1 import URL_SAFE, assert_error, create, reserve, wire

ALNUM = string.ascii_letters + string.digits
BASE = datetime(2026, 1, 15, 12, 0, 0)


def listing(client, auth, query: str = "") -> dict:
    response = client.get(f"/v1/artifacts{'?' + query if query else ''}", headers=auth)
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert set(body) == {"artifacts", "next_cursor", "has_more"}
    return body


def ids(body: dict) -> list[str]:
    return [item["artifact_id"] for item in body["artifacts"]]


def insert_artifacts(tenant, rows: list[dict]) -> list[dict]:
    """Rows straight into the table (fast, with chosen created_at); each gets an id."""
    full = []
    for row in rows:
        full.append(
            {
                "id": "art_" + "".join(secrets.choice(ALNUM) for _ in range(16)),
                "tenant_id": tenant.id,
                "filename": "bulk.bin",
                "content_type": "application/octet-stream",
                "size_bytes": 1,
                "content_hash": "0" * 64,
                "metadata_json": {},
                "status": "active",
                "created_at": BASE,
                "expires_at": None,
                "deleted_at": None,
                **row,
            }
        )
    db.session.execute(insert(Artifact), full)
    meta = [
        {"artifact_id": row["id"], "tenant_id": tenant.id, "key": key, "value": value}
        for row in full
        for key, value in row["metadata_json"].items()
    ]
    if meta:
        db.session.execute(insert(ArtifactMeta), meta)
    db.session.commit()
    return full


def expected_order(rows: list[dict]) -> list[str]:
    return [row["id"] for row in sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)]


def walk(client, auth, query: str, cursor: str | None = None) -> list[str]:
    """Every page, following next_cursor as the SDK does; checks page shape."""
    seen, pages = [], 0
    while True:
        body = listing(client, auth, query + (f"&cursor={cursor}" if cursor else ""))
        pages += 1
        seen += ids(body)
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return seen
        assert body["next_cursor"] and URL_SAFE.match(body["next_cursor"])
        assert body["next_cursor"] != cursor
        cursor = body["next_cursor"]
        assert pages < 1000


# ---------------------------------------------------------------- pagination at scale


def test_cursor_walk_over_a_thousand_artifacts(client, auth, tenant):
    rows = []
    # 600 artifacts sharing five instants, 500 with instants of their own.
    for i in range(600):
        rows.append({"created_at": BASE + timedelta(minutes=i % 5), "agent_id": "even" if i % 2 else "odd"})
    for i in range(500):
        rows.append(
            {
                "created_at": BASE - timedelta(seconds=i, microseconds=i * 7),
                "agent_id": "even" if i % 2 else "odd",
                "metadata_json": {"batch": "b1", "n": str(i % 3)},
            }
        )
    rows.append({"created_at": BASE + timedelta(minutes=1), "deleted_at": BASE})  # never listed
    rows.append({"created_at": BASE + timedelta(minutes=1), "expires_at": BASE})  # expired
    rows.append({"created_at": BASE + timedelta(minutes=1), "status": "pending", "content_hash": None})
    live = insert_artifacts(tenant, rows)
    del live[1100:1102]
    # ... and some through the API, created "now" (after BASE).
    api_ids = [create(client, auth, f"api {i}".encode(), agent_id="odd")["artifact_id"] for i in range(5)]

    everything = walk(client, auth, "limit=137")

    assert len(everything) == len(set(everything)) == 1106
    assert everything[5:] == expected_order(live)
    assert set(everything[:5]) == set(api_ids)

    odd = walk(client, auth, "agent_id=odd&limit=50")
    assert odd[5:] == expected_order([r for r in live if r.get("agent_id") == "odd"])
    assert len(odd) == 5 + 550

    batch = walk(client, auth, "metadata.batch=b1&metadata.n=2&agent_id=even&limit=20")
    assert batch == expected_order(
        [r for r in live if r["metadata_json"].get("n") == "2" and r.get("agent_id") == "even"]
    )


def test_a_page_of_exactly_the_rest_ends_the_walk(client, auth, tenant):
    rows = insert_artifacts(tenant, [{} for _ in range(10)])

    first = listing(client, auth, "limit=5")
    second = listing(client, auth, f"limit=5&cursor={first['next_cursor']}")

    assert first["has_more"] is True
    assert ids(first) + ids(second) == expected_order(rows)
    assert second["has_more"] is False and second["next_cursor"] is None
    assert listing(client, auth, "limit=10")["next_cursor"] is None


def test_the_cursor_survives_deletion_of_the_row_it_points_at(client, auth, tenant):
    rows = insert_artifacts(tenant, [{"created_at": BASE + timedelta(seconds=i % 2)} for i in range(9)])
    order = expected_order(rows)
    first = listing(client, auth, "limit=4")
    client.delete(f"/v1/artifacts/{order[3]}", headers=auth)

    rest = walk(client, auth, "limit=4", cursor=first["next_cursor"])

    assert ids(first) + rest == order


def test_default_and_bounds_of_limit(client, auth, tenant):
    insert_artifacts(tenant, [{} for _ in range(205)])
    assert len(listing(client, auth)["artifacts"]) == 50
    assert len(listing(client, auth, "limit=1")["artifacts"]) == 1
    assert len(listing(client, auth, "limit=200")["artifacts"]) == 200


@pytest.mark.parametrize("limit", ["0", "201", "x", "-1", "1.5", "1e2", "%20"])
def test_bad_limit_is_400(client, auth, limit):
    assert_error(client.get(f"/v1/artifacts?limit={limit}", headers=auth), 400, "invalid_request")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "%%%",
        "abc",
        _b64(b"not json"),
        _b64(b"\xff\xfe"),
        _b64(json.dumps([1, 2]).encode()),
        _b64(json.dumps(["2026-01-01T00:00:00"]).encode()),
        _b64(json.dumps({"a": 1, "b": 2}).encode()),
        _b64(json.dumps(["yesterday", "art_x"]).encode()),
        _b64(json.dumps("2026").encode()),
        _b64(json.dumps(None).encode()),
        _b64(json.dumps(["2026-01-01T00:00:00", "art_\u0000AAAAAAAAAAAAAAA"]).encode()),
        _b64(json.dumps(["2026-01-01T00:00:00", "' OR 1=1 --"]).encode()),
        _b64(json.dumps(["0001-01-01T00:00:00+05:00", "art_AAAAAAAAAAAAAAAA"]).encode()),
        _b64(json.dumps([20260101, "art_AAAAAAAAAAAAAAAA"]).encode()),
    ],
)
def test_bad_cursor_is_400(client, auth, cursor):
    create(client, auth)
    assert_error(
        client.get("/v1/artifacts", query_string={"cursor": cursor}, headers=auth), 400, "invalid_request"
    )


# ---------------------------------------------------------------- filters


@pytest.fixture
def spread(client, auth, tenant):
    """Artifacts with known created_at (whole seconds) and labels."""
    return insert_artifacts(
        tenant,
        [
            {
                "created_at": BASE,
                "session_id": "s1",
                "agent_id": "a1",
                "filename": "a.txt",
                "content_type": "text/plain",
                "metadata_json": {"env": "ci", "os": "linux"},
            },
            {
                "created_at": BASE + timedelta(hours=1),
                "session_id": "s1",
                "agent_id": "a2",
                "filename": "b.txt",
                "content_type": "text/plain",
                "metadata_json": {"env": "ci", "os": "mac"},
            },
            {
                "created_at": BASE + timedelta(hours=2),
                "session_id": "s2",
                "agent_id": "a1",
                "filename": "a.txt",
                "content_type": "application/json",
                "metadata_json": {"env": "dev", "os": "linux"},
            },
            {
                "created_at": BASE + timedelta(hours=3),
                "session_id": None,
                "agent_id": None,
                "filename": "c d.txt",
                "content_type": "text/plain",
                "metadata_json": {"env": "ci", "note": "a&b=c"},
            },
        ],
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"session_id": "s1"}, [1, 0]),
        ({"session_id": "s1", "agent_id": "a1"}, [0]),
        ({"agent_id": "a1"}, [2, 0]),
        ({"filename": "a.txt"}, [2, 0]),
        ({"filename": "c d.txt"}, [3]),
        ({"content_type": "text/plain"}, [3, 1, 0]),
        ({"metadata.env": "ci"}, [3, 1, 0]),
        ({"metadata.env": "ci", "metadata.os": "linux"}, [0]),
        ({"metadata.env": "ci", "metadata.os": "linux", "agent_id": "a2"}, []),
        ({"metadata.os": "linux", "session_id": "s2"}, [2]),
        ({"metadata.note": "a&b=c"}, [3]),
        ({"metadata.missing": "x"}, []),
        ({"session_id": "nope"}, []),
        ({}, [3, 2, 1, 0]),
    ],
)
def test_filters_are_exact_and_anded(client, auth, spread, query, expected):
    response = client.get("/v1/artifacts", query_string=query, headers=auth)
    assert ids(response.get_json()) == [spread[i]["id"] for i in expected]


def test_a_listing_takes_at_most_twenty_metadata_filters(client, auth, spread):
    """Each filter is a subquery whose planning grows fast with their number
    (300 held a PostgreSQL core for 33 s)."""
    twenty = {"metadata.env": "ci", **{f"metadata.k{i}": "v" for i in range(19)}}
    assert client.get("/v1/artifacts", query_string=twenty, headers=auth).get_json()["artifacts"] == []
    repeated = [*twenty.items(), ("metadata.env", "ci")]  # the same key again adds no filter
    assert client.get("/v1/artifacts", query_string=repeated, headers=auth).status_code == 200
    for count in (21, 300):
        many = {f"metadata.k{i}": "v" for i in range(count)}
        response = client.get("/v1/artifacts", query_string=many, headers=auth)
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "invalid_request"
        assert "at most 20 metadata filters" in response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("created_after=2026-01-15T12:00:00Z", [3, 2, 1]),  # exclusive
        ("created_after=2026-01-15T11:59:59Z", [3, 2, 1, 0]),
        ("created_before=2026-01-15T14:00:00Z", [1, 0]),  # exclusive
        ("created_after=2026-01-15T12:00:00Z&created_before=2026-01-15T15:00:00Z", [2, 1]),
        ("created_after=2026-01-15T12:00:00%2B00:00", [3, 2, 1]),
        ("created_after=2026-01-15T12:00:00+00:00", [3, 2, 1]),  # '+' arrives as a space
        ("created_after=2026-01-15T14:00:00+02:00", [3, 2, 1]),  # = 12:00Z
        ("created_before=2026-01-15T10:00:00-03:00", [0]),  # = 13:00Z
        ("created_after=2026-01-15T12:00:00.000001Z", [3, 2, 1]),
        ("created_after=2026-01-15T12:00:00", [3, 2, 1]),  # no zone: UTC
        ("created_before=2026-01-15T12:00:00Z", []),
    ],
)
def test_created_after_and_before(client, auth, spread, query, expected):
    assert ids(listing(client, auth, query)) == [spread[i]["id"] for i in expected]


@pytest.mark.parametrize(
    "query",
    [
        "created_after=yesterday",
        "created_before=2026-13-01T00:00:00Z",
        "created_after=2026-01-15T12:00:00ZZ",
        "created_after=1700000000",
        "created_after=0001-01-01T00:00:00%2B05:00",  # before year 1 in UTC
        "created_before=9999-12-31T23:59:59-05:00",  # after year 9999 in UTC
        "session_id=%00",
        "agent_id=a%00",
        "filename=a%00.txt",
        "content_type=text/%00",
        "metadata.k=%00",
        "metadata.1bad=x",
        "metadata.=x",
        "metadata.a.b=x",
        f"metadata.{'k' * 65}=x",
    ],
)
def test_bad_filters_are_400(client, auth, query):
    assert_error(client.get(f"/v1/artifacts?{query}", headers=auth), 400, "invalid_request")


def test_deleted_and_expired_are_excluded_pending_included(client, auth):
    kept = create(client, auth, b"1")
    deleted = create(client, auth, b"2")
    expiring = create(client, auth, b"3", ttl="1h")
    pending = reserve(client, auth).get_json()
    client.delete(f"/v1/artifacts/{deleted['artifact_id']}", headers=auth)

    assert set(ids(listing(client, auth))) == {
        kept["artifact_id"],
        expiring["artifact_id"],
        pending["artifact_id"],
    }
    clock.advance(timedelta(hours=1, seconds=1))
    assert set(ids(listing(client, auth))) == {kept["artifact_id"], pending["artifact_id"]}
    items = {item["artifact_id"]: item for item in listing(client, auth)["artifacts"]}
    v1.assert_artifact(items[pending["artifact_id"]], status="pending", content_hash=None)


def test_listed_artifacts_carry_every_field(client, auth):
    made = create(client, auth, filename="x.txt", metadata={"k": "v"}, session_id="s", agent_id="a")
    assert listing(client, auth)["artifacts"] == [made]


def test_another_tenants_artifacts_are_never_listed(client, auth, other):
    create(client, auth, session_id="s", metadata={"k": "v"})
    _, theirs = other
    mine = create(client, theirs, session_id="s", metadata={"k": "v"})
    for query in ("", "session_id=s", "metadata.k=v", "limit=200"):
        assert ids(listing(client, theirs, query)) == [mine["artifact_id"]]


def test_the_clients_query_shapes(client, auth, spread):
    # SDK: limit always, httpx-encoded; TS MCP: URLSearchParams encodes ' ' as '+'.
    assert ids(listing(client, auth, "limit=50&filename=c+d.txt")) == [spread[3]["id"]]
    assert ids(listing(client, auth, "limit=50&metadata.note=a%26b%3Dc")) == [spread[3]["id"]]
    assert ids(listing(client, auth, f"limit=50&created_after={wire(BASE)}")) == [
        r["id"] for r in spread[:0:-1]
    ]


def test_a_cursor_with_an_offset_is_read_as_utc(client, auth, tenant):
    rows = insert_artifacts(tenant, [{"created_at": BASE + timedelta(hours=i)} for i in range(3)])
    newest_first = expected_order(rows)
    cursor = _b64(
        json.dumps([(BASE + timedelta(hours=3, minutes=1)).isoformat() + "+02:00", newest_first[0]]).encode()
    )
    # 15:01+02:00 is 13:01Z: the artifacts made at 13:00Z and 12:00Z are older.
    assert ids(listing(client, auth, f"cursor={cursor}")) == newest_first[1:]
