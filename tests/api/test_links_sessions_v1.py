"""Public links (POST /v1/artifacts/{id}/links, GET /dl/{link_id}) and
sessions (seal, list)."""

import base64
import dataclasses
import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert

from app.extensions import db
from app.models import Session
from app.services import plans
from tests import clock
from tests.api import helpers_v1 as v1
from tests.api.helpers_v1 import (
    LINK_ID,
    MISSING_ID,
    UPGRADE_URL,
    URL_SAFE,
    assert_error,
    create,
    make_link,
    path_of,
    reserve,
    ts,
    upload,
)

# Every test here moves bytes: it runs on S3 storage too.
pytestmark = pytest.mark.storage


DATA = b"link me"
DAY = 86400


# ---------------------------------------------------------------- links


def test_create_link_fields_and_the_default_of_seven_days(client, auth):
    made = create(client, auth, DATA)

    response = make_link(client, auth, made["artifact_id"])

    assert response.status_code == 201
    link = response.get_json()
    assert set(link) == {"link_id", "url", "artifact_id", "expires_at", "created_at"}
    assert LINK_ID.match(link["link_id"])
    assert link["url"] == f"http://localhost/dl/{link['link_id']}"
    assert link["artifact_id"] == made["artifact_id"]
    assert ts(link["expires_at"]) - ts(link["created_at"]) == timedelta(days=7)
    assert abs((ts(link["created_at"]) - clock.now()).total_seconds()) <= 2


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (None, None),  # the SDK: no body, no Content-Type
        (b"", "application/json"),  # the TS MCP's header on a body-less request
        (b"{}", "application/json"),
        (b'{"expires_in": null}', "application/json"),
        (b"", None),
    ],
)
def test_link_body_may_be_absent_or_empty(client, auth, data, content_type):
    made = create(client, auth, DATA)
    headers = {**auth, **({"Content-Type": content_type} if content_type else {})}

    response = client.post(f"/v1/artifacts/{made['artifact_id']}/links", data=data, headers=headers)

    assert response.status_code == 201, response.data
    link = response.get_json()
    assert ts(link["expires_at"]) - ts(link["created_at"]) == timedelta(days=7)


def test_link_with_expires_in(client, auth):
    made = create(client, auth, DATA)
    link = make_link(client, auth, made["artifact_id"], expires_in=60).get_json()
    assert ts(link["expires_at"]) - ts(link["created_at"]) == timedelta(seconds=60)


@pytest.mark.parametrize("expires_in", [0, -1, "60", 1.5, True, [60], {"s": 1}])
def test_link_expires_in_must_be_a_positive_integer(client, auth, expires_in):
    made = create(client, auth, DATA)
    assert_error(make_link(client, auth, made["artifact_id"], expires_in=expires_in), 400, "invalid_request")


@pytest.mark.parametrize("body", [b"[]", b'"x"', b"{bad", b"60"])
def test_link_body_must_be_a_json_object(client, auth, body):
    made = create(client, auth, DATA)
    headers = {**auth, "Content-Type": "application/json"}
    response = client.post(f"/v1/artifacts/{made['artifact_id']}/links", data=body, headers=headers)
    assert_error(response, 400, "invalid_request")


def test_link_length_limits_on_pro(client, auth):
    made = create(client, auth, DATA)
    assert make_link(client, auth, made["artifact_id"], expires_in=1).status_code == 201
    assert make_link(client, auth, made["artifact_id"], expires_in=90 * DAY).status_code == 201
    error = assert_error(
        make_link(client, auth, made["artifact_id"], expires_in=90 * DAY + 1), 400, "invalid_request"
    )
    assert "upgrade_url" not in error


def test_link_length_limits_on_free(client, free):
    _, auth = free
    made = create(client, auth, DATA)
    assert make_link(client, auth, made["artifact_id"], expires_in=30 * DAY).status_code == 201

    error = assert_error(
        make_link(client, auth, made["artifact_id"], expires_in=30 * DAY + 1), 403, "quota_exceeded"
    )
    assert error["upgrade_url"] == UPGRADE_URL
    assert_error(
        make_link(client, auth, made["artifact_id"], expires_in=90 * DAY + 1), 400, "invalid_request"
    )


def test_active_link_cap_on_free(client, free, monkeypatch):
    monkeypatch.setitem(plans.PLANS, "free", dataclasses.replace(plans.PLANS["free"], max_active_links=3))
    _, auth = free
    made = create(client, auth, DATA)
    for _ in range(2):
        assert make_link(client, auth, made["artifact_id"]).status_code == 201
    assert make_link(client, auth, made["artifact_id"], expires_in=60).status_code == 201

    error = assert_error(make_link(client, auth, made["artifact_id"]), 403, "quota_exceeded")
    assert error["upgrade_url"] == UPGRADE_URL
    assert client.get("/v1/whoami", headers=auth).get_json()["max_active_links"] == 3

    # An expired link frees its place.
    clock.advance(timedelta(seconds=61))
    assert make_link(client, auth, made["artifact_id"]).status_code == 201
    assert_error(make_link(client, auth, made["artifact_id"]), 403, "quota_exceeded")


def test_the_real_free_cap_is_fifty(client, free):
    _, auth = free
    made = create(client, auth, DATA)
    for _ in range(50):
        assert make_link(client, auth, made["artifact_id"]).status_code == 201
    assert_error(make_link(client, auth, made["artifact_id"]), 403, "quota_exceeded")
    # Deleting the artifact ends its links, freeing the cap.
    client.delete(f"/v1/artifacts/{made['artifact_id']}", headers=auth)
    again = create(client, auth, b"new")
    assert make_link(client, auth, again["artifact_id"]).status_code == 201


def test_active_link_cap_on_pro_offers_no_upgrade(client, auth, monkeypatch):
    monkeypatch.setitem(plans.PLANS, "pro", dataclasses.replace(plans.PLANS["pro"], max_active_links=1))
    made = create(client, auth, DATA)
    assert make_link(client, auth, made["artifact_id"]).status_code == 201
    error = assert_error(make_link(client, auth, made["artifact_id"]), 403, "quota_exceeded")
    assert "upgrade_url" not in error


def test_link_downloads_without_auth_any_number_of_times(client, auth):
    made = create(client, auth, DATA, filename="réport.txt", content_type="text/plain")
    link = make_link(client, auth, made["artifact_id"]).get_json()

    for _ in range(3):
        response = client.get(path_of(link["url"]))
        assert response.status_code == 200
        assert response.data == DATA
        assert response.headers["Content-Type"] == "text/plain"
        assert response.headers["Content-Length"] == str(len(DATA))
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith('attachment; filename="r_port.txt"; ')
        assert "filename*=UTF-8''r%C3%A9port.txt" in disposition

    head = client.head(path_of(link["url"]))
    assert head.status_code == 200 and head.data == b""
    ranged = client.get(path_of(link["url"]), headers={"Range": "bytes=0-3"})
    assert ranged.status_code == 206 and ranged.data == DATA[:4]


@pytest.mark.parametrize(
    "link_id",
    [
        "lnk_AAAAAAAAAAAAAAAAAAAA",
        "nope",
        "lnk_",
        "art_0000000000000000",
        "lnk_%00",
        "lnk_AAAAAAAAAAAAAAAAAAA%00",
    ],
)
def test_unknown_link_is_404(client, link_id):
    assert_error(client.get(f"/dl/{link_id}"), 404, "link_not_found")
    assert_error(client.head(f"/dl/{link_id}"), 404, "link_not_found")


def test_expired_link_is_410(client, auth):
    made = create(client, auth, DATA)
    link = make_link(client, auth, made["artifact_id"]).get_json()
    clock.advance(timedelta(days=7) - timedelta(seconds=1))
    assert client.get(path_of(link["url"])).status_code == 200
    clock.advance(timedelta(seconds=2))
    assert_error(client.get(path_of(link["url"])), 410, "link_expired")


def test_link_stops_when_the_artifact_is_deleted_or_expires(client, auth):
    deleted = create(client, auth, b"a")
    deleted_link = make_link(client, auth, deleted["artifact_id"]).get_json()
    expiring = create(client, auth, b"b", ttl="1h")
    expiring_link = make_link(client, auth, expiring["artifact_id"]).get_json()

    client.delete(f"/v1/artifacts/{deleted['artifact_id']}", headers=auth)
    clock.advance(timedelta(hours=1, seconds=1))

    assert_error(client.get(path_of(deleted_link["url"])), 410, "artifact_already_deleted")
    assert_error(client.get(path_of(expiring_link["url"])), 410, "artifact_expired")


def test_links_to_deleted_expired_pending_or_unknown_artifacts(client, auth):
    deleted = create(client, auth, b"a")
    client.delete(f"/v1/artifacts/{deleted['artifact_id']}", headers=auth)
    assert_error(make_link(client, auth, deleted["artifact_id"]), 410, "artifact_already_deleted")

    pending = reserve(client, auth).get_json()
    assert_error(make_link(client, auth, pending["artifact_id"]), 400, "upload_not_found")

    assert_error(make_link(client, auth, MISSING_ID), 404, "artifact_not_found")

    expiring = create(client, auth, b"b", ttl="1h")
    clock.advance(timedelta(hours=2))
    assert_error(make_link(client, auth, expiring["artifact_id"]), 410, "artifact_expired")


def test_link_url_uses_the_configured_public_base(app, client, auth, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", "https://hoard.example.com")
    made = create(client, auth, DATA)
    link = make_link(client, auth, made["artifact_id"]).get_json()
    assert link["url"] == f"https://hoard.example.com/dl/{link['link_id']}"


# ---------------------------------------------------------------- seal


def seal(client, auth, session_id, headers=None):
    return client.post(f"/v1/sessions/{session_id}/seal", headers={**auth, **(headers or {})})


def test_seal(client, auth):
    create(client, auth, b"1", session_id="ses_abc123def456")
    upload(client, auth, b"2", fields={"session_id": "ses_abc123def456"})

    response = seal(client, auth, "ses_abc123def456")

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"session_id", "status", "sealed_at", "artifact_count"}
    assert body["session_id"] == "ses_abc123def456"
    assert body["status"] == "sealed"
    assert body["artifact_count"] == 2
    assert abs((ts(body["sealed_at"]) - clock.now()).total_seconds()) <= 2


def test_seal_is_idempotent(client, auth):
    create(client, auth, session_id="s")
    first = seal(client, auth, "s").get_json()
    clock.advance(timedelta(hours=3))
    again = seal(client, auth, "s", headers={"Content-Type": "application/json"})
    assert again.status_code == 200
    assert again.get_json() == first


def test_seal_unknown_is_404(client, auth):
    assert_error(seal(client, auth, "never-used"), 404, "session_not_found")


def test_seal_validates_the_session_id(client, auth):
    assert_error(seal(client, auth, "a" * 129), 400, "invalid_request")
    assert_error(seal(client, auth, "a/b"), 400, "invalid_request")


def test_sealed_artifacts_stay_readable(client, auth):
    made = create(client, auth, DATA, session_id="s")
    seal(client, auth, "s")
    assert client.get(f"/v1/artifacts/{made['artifact_id']}", headers=auth).status_code == 200
    assert client.get(v1.download_path(client, auth, made["artifact_id"])).data == DATA


def test_seal_persists_after_every_artifact_is_deleted(client, auth):
    one = create(client, auth, b"1", session_id="s")
    two = create(client, auth, b"2", session_id="s")
    sealed = seal(client, auth, "s").get_json()
    for made in (one, two):
        assert client.delete(f"/v1/artifacts/{made['artifact_id']}", headers=auth).status_code == 200

    assert seal(client, auth, "s").get_json()["sealed_at"] == sealed["sealed_at"]
    assert_error(v1.upload_json(client, auth, session_id="s"), 409, "session_sealed")
    listed = client.get("/v1/sessions", headers=auth).get_json()["sessions"]
    assert [(s["session_id"], s["is_sealed"]) for s in listed] == [("s", True)]


def test_a_session_whose_artifacts_were_deleted_before_sealing_can_still_be_sealed(client, auth):
    made = create(client, auth, session_id="s")
    client.delete(f"/v1/artifacts/{made['artifact_id']}", headers=auth)
    assert seal(client, auth, "s").status_code == 200


def test_a_reservation_starts_a_session(client, auth):
    reserve(client, auth, session_id="presigned")
    assert seal(client, auth, "presigned").get_json()["artifact_count"] == 1


# ---------------------------------------------------------------- list sessions


def sessions(client, auth, query: str = "") -> dict:
    response = client.get(f"/v1/sessions{'?' + query if query else ''}", headers=auth)
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert set(body) == {"sessions", "next_cursor", "has_more"}
    return body


def test_list_sessions_fields_and_order(client, auth):
    create(client, auth, b"1", session_id="old")
    clock.advance(timedelta(minutes=1))
    create(client, auth, b"2", session_id="new")
    clock.advance(timedelta(minutes=1))
    create(client, auth, b"3", session_id="old")  # old is now the most recent activity
    create(client, auth, b"4")  # no session
    seal(client, auth, "new")

    listed = sessions(client, auth)["sessions"]

    assert [s["session_id"] for s in listed] == ["old", "new"]
    for item in listed:
        assert set(item) == {
            "session_id",
            "artifact_count",
            "is_sealed",
            "first_artifact_at",
            "last_artifact_at",
        }
        assert isinstance(item["artifact_count"], int) and isinstance(item["is_sealed"], bool)
    old, new = listed
    assert (old["artifact_count"], old["is_sealed"]) == (2, False)
    assert (new["artifact_count"], new["is_sealed"]) == (1, True)
    span = ts(old["last_artifact_at"]) - ts(old["first_artifact_at"])
    assert abs(span - timedelta(minutes=2)) <= timedelta(seconds=1)
    assert new["first_artifact_at"] == new["last_artifact_at"]


BASE = datetime(2026, 3, 1, 9, 0, 0)


@pytest.fixture
def many_sessions(tenant):
    """25 sessions, several sharing a last_artifact_at, first_artifact_at one hour apart."""
    rows = [
        {
            "tenant_id": tenant.id,
            "session_id": f"ses_{i:03d}",
            "artifact_count": i + 1,
            "first_artifact_at": BASE + timedelta(hours=i),
            "last_artifact_at": BASE + timedelta(days=1, minutes=i // 4),
            "sealed_at": None,
        }
        for i in range(25)
    ]
    db.session.execute(insert(Session), rows)
    db.session.commit()
    return [
        r["session_id"]
        for r in sorted(rows, key=lambda r: (r["last_artifact_at"], r["session_id"]), reverse=True)
    ]


def walk_sessions(client, auth, query: str) -> list[str]:
    seen, after = [], None
    while True:
        body = sessions(client, auth, query + (f"&after={after}" if after else ""))
        seen += [s["session_id"] for s in body["sessions"]]
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return seen
        assert URL_SAFE.match(body["next_cursor"]) and body["next_cursor"] != after
        after = body["next_cursor"]


def test_list_sessions_paginates_with_after(client, auth, many_sessions):
    assert walk_sessions(client, auth, "limit=4") == many_sessions
    assert walk_sessions(client, auth, "limit=1") == many_sessions
    assert len(sessions(client, auth)["sessions"]) == 25
    # The artifacts list's parameter name works too (the MCP maps it).
    first = sessions(client, auth, "limit=3")
    rest = sessions(client, auth, f"limit=100&cursor={first['next_cursor']}")
    assert [s["session_id"] for s in first["sessions"] + rest["sessions"]] == many_sessions


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("created_after=2026-03-01T20:00:00Z", range(12, 25)),  # exclusive
        ("created_before=2026-03-01T12:00:00Z", range(0, 3)),
        ("created_after=2026-03-01T10:00:00+00:00&created_before=2026-03-01T14:00:00+00:00", range(2, 5)),
        ("created_after=2026-03-01T12:00:00+03:00", range(1, 25)),  # '+' unencoded, as the SDK sends it
    ],
)
def test_list_sessions_created_filters(client, auth, many_sessions, query, expected):
    listed = walk_sessions(client, auth, f"limit=5&{query}")
    assert listed == [s for s in many_sessions if int(s[4:]) in expected]


def _cursor(*items) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(items)).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=201",
        "limit=x",
        "after=garbage!",
        "after=abc",
        "created_after=soon",
        "created_before=2026-02-30T00:00:00Z",
        "created_after=0001-01-01T00:00:00%2B05:00",
        "after=" + _cursor("2026-01-01T00:00:00", "a\x00b"),
        f"after={_cursor('2026-01-01T00:00:00', '')}",
        f"after={_cursor('2026-01-01T00:00:00', 7)}",
        f"after={_cursor('never', 's')}",
        f"after={_cursor(1, 's')}",
    ],
)
def test_list_sessions_bad_queries_are_400(client, auth, query):
    assert_error(client.get(f"/v1/sessions?{query}", headers=auth), 400, "invalid_request")


def test_session_ids_the_clients_make(client, auth):
    for session_id in ("ses_a1b2c3d4e5f6", "run.2026-05-28_1", "A" * 128):
        create(client, auth, session_id=session_id)
        assert seal(client, auth, session_id).status_code == 200
