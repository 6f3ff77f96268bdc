"""GET /v1/whoami with real figures, and authentication on every /v1 route."""

import logging
from datetime import timedelta

import pytest
import sqlalchemy

from app.services import health, plans, tenants
from app.storage import StorageError, get_storage
from tests import clock
from tests.api import helpers_v1 as v1
from tests.api.helpers_v1 import MISSING_ID, assert_error, create, make_link
from tests.factories import bearer

WHOAMI_FIELDS = {
    "tenant_name": str,
    "plan": str,
    "api_key_last_4": str,
    "usage_requests_month": int,
    "plan_requests_limit_month": int,
    "usage_storage_bytes": int,
    "plan_storage_limit_bytes": int,
    "active_links": int,
    "max_active_links": int,
    "rate_limit_sustained": int,
    "rate_limit_burst": int,
}


def whoami(client, auth) -> dict:
    response = client.get("/v1/whoami", headers=auth)
    assert response.status_code == 200, response.data
    body = response.get_json()
    for name, kind in WHOAMI_FIELDS.items():
        # The CLI formats these directly; a null crashes `artifacta whoami`.
        assert isinstance(body[name], kind) and not isinstance(body[name], bool), (name, body[name])
    assert None not in body.values()
    return body


# ---------------------------------------------------------------- whoami


def test_whoami_on_pro(app, client, tenant_and_key, auth):
    tenant, key = tenant_and_key

    body = whoami(client, auth)

    pro = plans.PLANS["pro"]
    assert body["tenant_name"] == tenant.name == "acme"
    assert body["plan"] == "pro"
    assert body["api_key_last_4"] == key[-4:]
    assert body["plan_requests_limit_month"] == pro.requests_limit_month
    assert body["plan_storage_limit_bytes"] == pro.storage_limit_bytes
    assert body["max_active_links"] == pro.max_active_links == 500
    assert body["rate_limit_sustained"] == app.config["RATE_LIMIT_SUSTAINED"]
    assert body["rate_limit_burst"] == app.config["RATE_LIMIT_BURST"]
    assert (body["usage_storage_bytes"], body["active_links"]) == (0, 0)


def test_whoami_on_free(client, free):
    _, auth = free
    body = whoami(client, auth)
    limits = plans.PLANS["free"]
    assert body["plan"] == "free"
    assert body["plan_requests_limit_month"] == limits.requests_limit_month
    assert body["plan_storage_limit_bytes"] == limits.storage_limit_bytes
    assert body["max_active_links"] == 50


def test_whoami_counts_this_months_requests(client, auth, other):
    assert whoami(client, auth)["usage_requests_month"] == 0
    for _ in range(3):
        client.get("/v1/artifacts", headers=auth)
    client.get(f"/v1/artifacts/{MISSING_ID}", headers=auth)  # a 404 is a request too
    client.get("/v1/whoami", headers=other[1])  # another tenant's
    client.get("/v1/whoami", headers=bearer("ak_live_" + "x" * 32))  # not authenticated
    client.get("/health")

    # The first whoami, three lists and the 404.
    assert whoami(client, auth)["usage_requests_month"] == 5
    assert whoami(client, auth)["usage_requests_month"] == 6
    assert whoami(client, other[1])["usage_requests_month"] == 1


def test_whoami_requests_start_again_each_month(client, auth):
    whoami(client, auth)
    whoami(client, auth)
    clock.advance(timedelta(days=32))
    assert whoami(client, auth)["usage_requests_month"] == 0


def test_whoami_storage_counts_a_shared_blob_once(client, auth):
    create(client, auth, b"a" * 100, filename="one")
    create(client, auth, b"a" * 100, filename="two")
    create(client, auth, b"b" * 30)
    assert whoami(client, auth)["usage_storage_bytes"] == 130


def test_whoami_storage_limit_follows_an_operator_quota(client, tenant, auth):
    tenants.update_tenant(tenant, storage_quota_bytes=12345)
    assert whoami(client, auth)["plan_storage_limit_bytes"] == 12345


def test_whoami_active_links(client, auth):
    short = create(client, auth, b"1")
    deleted = create(client, auth, b"2")
    expiring = create(client, auth, b"3", ttl="2h")
    make_link(client, auth, short["artifact_id"], expires_in=60)
    make_link(client, auth, deleted["artifact_id"])
    make_link(client, auth, deleted["artifact_id"])
    make_link(client, auth, expiring["artifact_id"])
    assert whoami(client, auth)["active_links"] == 4

    client.delete(f"/v1/artifacts/{deleted['artifact_id']}", headers=auth)
    assert whoami(client, auth)["active_links"] == 2
    clock.advance(timedelta(seconds=61))
    assert whoami(client, auth)["active_links"] == 1
    clock.advance(timedelta(hours=2))
    assert whoami(client, auth)["active_links"] == 0


def test_whoami_shows_the_key_used(client, tenant, auth):
    _, second = tenants.create_key(tenant)
    assert whoami(client, bearer(second))["api_key_last_4"] == second[-4:]


# ---------------------------------------------------------------- authentication

AUTHENTICATED_ROUTES = [
    ("GET", "/v1/whoami"),
    ("GET", "/v1/artifacts"),
    ("POST", "/v1/artifacts"),
    ("POST", "/v1/artifacts/upload-url"),
    ("GET", f"/v1/artifacts/{MISSING_ID}"),
    ("DELETE", f"/v1/artifacts/{MISSING_ID}"),
    ("GET", f"/v1/artifacts/{MISSING_ID}/download-url"),
    ("POST", "/v1/artifacts/batch/download-urls"),
    ("POST", f"/v1/artifacts/{MISSING_ID}/complete"),
    ("POST", f"/v1/artifacts/{MISSING_ID}/extend-ttl"),
    ("POST", f"/v1/artifacts/{MISSING_ID}/links"),
    ("GET", "/v1/sessions"),
    ("POST", "/v1/sessions/ses_x/seal"),
]


@pytest.fixture
def revoked(tenant):
    api_key, plaintext = tenants.create_key(tenant)
    tenants.revoke_key(tenant, api_key.id)
    return plaintext


@pytest.mark.parametrize(
    "credential",
    ["missing", "empty", "basic", "malformed", "unknown", "revoked", "no-scheme", "other-prefix"],
)
@pytest.mark.parametrize(("method", "path"), AUTHENTICATED_ROUTES)
def test_every_route_needs_a_valid_key(client, auth, revoked, credential, method, path):
    key = auth["Authorization"].split()[1]
    headers = {
        "missing": {},
        "empty": {"Authorization": "Bearer "},
        "basic": {"Authorization": f"Basic {key}"},
        "malformed": {"Authorization": "Bearer ak_live_short"},
        "unknown": {"Authorization": "Bearer ak_live_" + "Z" * 32},
        "revoked": {"Authorization": f"Bearer {revoked}"},
        "no-scheme": {"Authorization": key},
        "other-prefix": {"Authorization": "Bearer ak_test_" + key[8:]},
    }[credential]

    response = client.open(
        path, method=method, json={"ttl": "1d"} if method == "POST" else None, headers=headers
    )

    assert_error(response, 401, "unauthorized")


def test_the_scheme_is_case_insensitive_and_a_revoked_key_stops_at_once(client, tenant, auth):
    key = auth["Authorization"].split()[1]
    assert client.get("/v1/whoami", headers={"Authorization": f"bearer {key}"}).status_code == 200
    api_key, plaintext = tenants.create_key(tenant)
    assert client.get("/v1/whoami", headers=bearer(plaintext)).status_code == 200
    tenants.revoke_key(tenant, api_key.id)
    assert_error(client.get("/v1/whoami", headers=bearer(plaintext)), 401, "unauthorized")
    assert client.get("/v1/whoami", headers=auth).status_code == 200


def test_public_routes_need_no_key(client, auth):
    made = create(client, auth)
    link = make_link(client, auth, made["artifact_id"]).get_json()
    assert client.get("/health").status_code == 200
    assert client.get(v1.path_of(link["url"])).status_code == 200
    assert client.get(v1.download_path(client, auth, made["artifact_id"])).status_code == 200


# ---------------------------------------------------------------- health


def test_health(app, client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "version": app.config["VERSION"],
        "checks": {"database": "ok", "storage": "ok"},
    }


@pytest.mark.parametrize("part", ["database", "storage"])
def test_health_names_the_part_that_failed(app, client, monkeypatch, part):
    monkeypatch.setattr(logging.getLogger("app.services.health"), "disabled", True)  # expected tracebacks
    if part == "database":
        monkeypatch.setattr(health, "text", lambda _: sqlalchemy.text("SELECT * FROM no_such_table"))
    else:

        def broken():
            raise StorageError("disk gone")

        monkeypatch.setattr(get_storage(), "check", broken)

    response = client.get("/health")

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "degraded" and body["version"] == app.config["VERSION"]
    assert body["checks"][part] == "failed"
    assert [name for name, state in body["checks"].items() if state != "ok"] == [part]
