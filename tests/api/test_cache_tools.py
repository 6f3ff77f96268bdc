"""The build tools' caches: Nx (/v1/cache, its OpenAPI document) and the plain
HTTP cache (/cache/<tool>/) for ccache, sccache, Bazel, Gradle and Rush."""

import base64
import hashlib
import io
import json

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import CacheEntry
from app.services import tenants, tool_cache
from tests.api.test_openapi import assert_documented
from tests.factories import bearer
from tests.storage_probe import stored_files

# Every test here moves bytes: it runs on S3 storage too.
pytestmark = pytest.mark.storage

BODY = bytes(range(256)) * 40
SHA = hashlib.sha256(BODY).hexdigest()
# A key each plain-HTTP tool really sends (see /work/notes/clients.md).
TOOL_KEYS = {
    "ccache": "1e/e9qn1l8v51l5ff2i8sluboql2t1kvvg",
    "sccache": "2/7/8/" + "27833c74" * 8,
    "bazel": f"cas/{SHA}",
    "gradle": "f3c2a9d1e0b84c7d9a6e5f4b3c2d1e0f",
    "rush": "my-project+lib_phase_build-0123456789abcdef0123456789abcdef01234567",
}
NX_HASH = "12345678901234567890"


def basic(key: str, user: str = "anyuser") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


def entries() -> int:
    return db.session.scalar(select(func.count()).select_from(CacheEntry))


# -------------------------------------------------------------- plain HTTP


@pytest.mark.parametrize("tool", sorted(TOOL_KEYS))
def test_a_put_entry_reads_back_with_get_and_head(client, auth, tool):
    url = f"/cache/{tool}/{TOOL_KEYS[tool]}"
    assert client.get(url, headers=auth).status_code == 404
    assert client.head(url, headers=auth).status_code == 404
    assert client.put(url, data=BODY, headers=auth).status_code == 200
    got = client.get(url, headers=auth)
    assert got.status_code == 200
    assert got.data == BODY
    assert got.headers["Content-Type"] == "application/octet-stream"
    head = client.head(url, headers=auth)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(BODY))
    assert head.data == b""


@pytest.mark.parametrize("tool", ["ccache", "sccache", "gradle", "rush"])
def test_a_second_put_replaces_the_entry(client, auth, tool):
    url = f"/cache/{tool}/{TOOL_KEYS[tool]}"
    assert client.put(url, data=b"first", headers=auth).status_code == 200
    assert client.put(url, data=b"second!", headers=auth).status_code == 200
    assert client.get(url, headers=auth).data == b"second!"
    assert entries() == 1
    assert len(stored_files(client.application)) == 1


def test_basic_credentials_carry_the_key_as_password(client, tenant_and_key):
    _, key = tenant_and_key
    url = f"/cache/gradle/{TOOL_KEYS['gradle']}"
    assert client.put(url, data=BODY, headers=basic(key)).status_code == 200
    assert client.get(url, headers=basic(key, user="")).data == BODY


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer ak_live_" + "x" * 32},
        {"Authorization": "Basic " + base64.b64encode(b"user:wrong").decode()},
        {"Authorization": "Basic !!!notbase64"},
    ],
)
def test_without_a_valid_key_every_method_is_401_with_a_basic_challenge(client, headers):
    url = f"/cache/gradle/{TOOL_KEYS['gradle']}"
    for method in ("GET", "HEAD", "PUT", "MKCOL", "PROPFIND"):
        response = client.open(url, method=method, data=b"x" if method == "PUT" else None, headers=headers)
        assert response.status_code == 401, method
        assert response.headers["WWW-Authenticate"] == 'Basic realm="Hoard"'
    assert entries() == 0


def test_an_unknown_tool_is_404(client, auth):
    response = client.put("/cache/maven/abc", data=BODY, headers=auth)
    assert response.status_code == 404
    assert response.get_json()["code"] == "not_found"


def test_tools_are_namespaces_the_same_key_never_collides(client, auth):
    key = "ab/cdef0123456789"
    for tool in ("ccache", "sccache", "gradle", "rush"):
        assert client.put(f"/cache/{tool}/{key}", data=tool.encode(), headers=auth).status_code == 200
    for tool in ("ccache", "sccache", "gradle", "rush"):
        assert client.get(f"/cache/{tool}/{key}", headers=auth).data == tool.encode()
    # turbo's /v8 and Nx's /v1/cache share nothing with them either.
    assert client.get("/v8/artifacts/cdef0123456789", headers=auth).status_code == 404
    assert client.get("/v1/cache/cdef0123456789", headers=auth).status_code == 404


def test_a_doubled_slash_after_the_base_url_names_the_same_entry(client, auth):
    # sccache, given a base URL ending in '/', sends '//' after it.
    assert client.put("/cache/sccache//2/7/8/abc", data=BODY, headers=auth).status_code == 200
    assert client.get("/cache/sccache/2/7/8/abc", headers=auth).data == BODY


# ------------------------------------------------------------------ Bazel


def test_bazel_cas_put_whose_body_does_not_hash_to_its_key_is_refused_and_stores_nothing(client, auth):
    wrong = hashlib.sha256(b"something else").hexdigest()
    response = client.put(f"/cache/bazel/cas/{wrong}", data=BODY, headers=auth)
    assert response.status_code == 400
    assert response.get_json()["code"] == "digest_mismatch"
    assert client.get(f"/cache/bazel/cas/{wrong}", headers=auth).status_code == 404
    assert entries() == 0
    assert stored_files(client.application) == []


def test_bazel_ac_entries_are_not_hash_checked(client, auth):
    # An ActionResult is keyed by the action's digest, not its own.
    response = client.put(f"/cache/bazel/ac/{'0' * 64}", data=b"action result", headers=auth)
    assert response.status_code == 200
    assert client.get(f"/cache/bazel/ac/{'0' * 64}", headers=auth).data == b"action result"


@pytest.mark.parametrize("key", ["cas/abc", f"cas/{SHA.upper()}", f"other/{SHA}", SHA, f"ac/{SHA}/x"])
def test_bazel_keys_other_than_ac_or_cas_sha256_are_refused(client, auth, key):
    response = client.put(f"/cache/bazel/{key}", data=BODY, headers=auth)
    assert response.status_code == 400
    assert entries() == 0


def test_ccache_bazel_layout_keys_are_ccaches_own_and_not_hash_checked(client, auth):
    url = f"/cache/ccache/ac/{'1e' * 32}"
    assert client.put(url, data=BODY, headers=auth).status_code == 200
    assert client.get(url, headers=auth).data == BODY


# ------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "key",
    [
        "..",
        "a/../b",
        "%2e%2e/a",
        "a/%2E%2E",
        "a/./b",
        "a%00b",
        "a\\b",
        "a b",
        "x" * 256,
        "/".join(["ab"] * 400),
    ],
)
@pytest.mark.parametrize("tool", ["ccache", "sccache", "gradle", "rush"])
def test_keys_with_path_tricks_are_refused_with_a_json_error(client, auth, tool, key):
    for method in ("PUT", "GET"):
        response = client.open(f"/cache/{tool}/{key}", method=method, data=BODY, headers=auth)
        assert response.status_code == 400, (method, response.data)
        assert response.get_json()["code"] == "invalid_request"
    assert entries() == 0
    assert stored_files(client.application) == []


@pytest.mark.parametrize("tool", ["ccache", "gradle"])
def test_an_empty_key_is_refused(client, auth, tool):
    for url in (f"/cache/{tool}/", f"/cache/{tool}//"):
        assert client.put(url, data=BODY, headers=auth).status_code == 400
        assert client.get(url, headers=auth).status_code == 400
    # The base URL without its slash names no key at all.
    assert client.put(f"/cache/{tool}", data=BODY, headers=auth).status_code == 404
    assert entries() == 0


def test_an_overlong_key_is_stored_by_its_digest(client, auth):
    key = "/".join([f"segment{i:03d}" for i in range(60)])
    assert len(key) > 128
    assert client.put(f"/cache/rush/{key}", data=BODY, headers=auth).status_code == 200
    assert client.get(f"/cache/rush/{key}", headers=auth).data == BODY
    (name,) = db.session.scalars(select(CacheEntry.hash))
    assert name.startswith("rush/#")


# ----------------------------------------------------------------- WebDAV


def test_webdav_collections_are_implied_mkcol_is_201_propfind_404_until_an_entry(client, auth):
    # sccache's start-up check and every write: PROPFIND, MKCOL, PUT.
    assert client.open("/cache/sccache/", method="PROPFIND", headers=auth).status_code == 404
    assert client.open("/cache/sccache/", method="MKCOL", headers=auth).status_code == 201
    assert client.open("/cache/sccache/2/7/", method="MKCOL", headers=auth).status_code == 201
    assert client.put("/cache/sccache/.sccache_check", data=b"Hello, World!", headers=auth).status_code == 200
    found = client.open("/cache/sccache/.sccache_check", method="PROPFIND", headers=auth)
    assert found.status_code == 207
    assert b"<D:getcontentlength>13</D:getcontentlength>" in found.data
    assert entries() == 1


# -------------------------------------------------------------------- Nx


def test_nx_put_then_get(client, auth):
    assert client.get(f"/v1/cache/{NX_HASH}", headers=auth).status_code == 404
    assert client.put(f"/v1/cache/{NX_HASH}", data=BODY, headers=auth).status_code == 200
    got = client.get(f"/v1/cache/{NX_HASH}", headers=auth)
    assert got.status_code == 200
    assert got.data == BODY
    assert got.headers["Content-Type"] == "application/octet-stream"


def test_nx_a_second_put_is_409_and_keeps_the_first(client, auth):
    assert client.put(f"/v1/cache/{NX_HASH}", data=b"first", headers=auth).status_code == 200
    second = client.put(f"/v1/cache/{NX_HASH}", data=b"second", headers=auth)
    assert second.status_code == 409
    assert client.get(f"/v1/cache/{NX_HASH}", headers=auth).data == b"first"
    assert len(stored_files(client.application)) == 1


def test_nx_errors_are_text_for_the_cli_to_print(client):
    response = client.get(f"/v1/cache/{NX_HASH}")
    assert response.status_code == 401
    # Exactly: Nx refuses a 401 whose type carries a charset.
    assert response.headers["Content-Type"] == "text/plain"
    assert response.data == b"A valid API key is required."


def test_nx_put_without_content_length_is_400(client, auth):
    response = client.put(
        f"/v1/cache/{NX_HASH}",
        input_stream=io.BytesIO(BODY),
        headers={**auth, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 400
    assert entries() == 0


def test_nx_routes_leave_the_artifacta_routes_alone(client, auth):
    assert client.get("/v1/artifacts", headers=auth).status_code == 200


# ------------------------------------------------- cache status and tools off


@pytest.mark.parametrize("status", ["disabled", "paused"])
def test_a_disabled_or_paused_cache_answers_reads_as_misses_and_refuses_writes(client, auth, tenant, status):
    client.put(f"/cache/gradle/{TOOL_KEYS['gradle']}", data=BODY, headers=auth)
    client.put(f"/v1/cache/{NX_HASH}", data=BODY, headers=auth)
    tenants.update_tenant(tenant, cache_status=status)
    for tool in ("gradle", "bazel"):
        url = f"/cache/{tool}/{TOOL_KEYS[tool]}"
        assert client.get(url, headers=auth).status_code == 404
        assert client.get(url, headers=auth).get_json()["code"] == "cache_unavailable"
        assert client.put(url, data=BODY, headers=auth).status_code == 403
    # Nx takes 404 as a miss and 403 on a PUT as "not stored, carry on".
    assert client.get(f"/v1/cache/{NX_HASH}", headers=auth).status_code == 404
    assert client.put("/v1/cache/999", data=BODY, headers=auth).status_code == 403


@pytest.mark.parametrize("setting", ["paused", "disabled", "tool_off", "over_quota"])
def test_rushs_refused_write_is_declined_with_202_so_its_build_does_not_fail(client, auth, tenant, setting):
    # rush-lib fails `rush build` on any write its plugin reports as failed.
    if setting == "tool_off":
        tool_cache.set_tool(tenant, "rush", enabled=False)
    elif setting == "over_quota":
        tenants.update_tenant(tenant, storage_quota_bytes=10)
    else:
        tenants.update_tenant(tenant, cache_status=setting)
    declined = client.put(f"/cache/rush/{TOOL_KEYS['rush']}", data=BODY, headers=auth)
    assert declined.status_code == 202
    assert declined.get_json()["stored"] is False
    assert (
        declined.get_json()["code"]
        == {
            "paused": "paused",
            "disabled": "remote_caching_disabled",
            "tool_off": "tool_disabled",
            "over_quota": "over_limit",
        }[setting]
    )
    assert client.get(f"/cache/rush/{TOOL_KEYS['rush']}", headers=auth).status_code == 404
    if setting != "tool_off":
        assert client.put(f"/cache/gradle/{TOOL_KEYS['gradle']}", data=BODY, headers=auth).status_code == 403
    assert entries() == 0
    assert stored_files(client.application) == []


def test_a_tool_turned_off_answers_misses_and_403s_while_the_others_serve(client, auth, tenant):
    for tool in ("gradle", "rush"):
        client.put(f"/cache/{tool}/{TOOL_KEYS[tool]}", data=BODY, headers=auth)
    tool_cache.set_tool(tenant, "gradle", enabled=False)
    assert client.get(f"/cache/gradle/{TOOL_KEYS['gradle']}", headers=auth).status_code == 404
    refused = client.put(f"/cache/gradle/{TOOL_KEYS['gradle']}", data=BODY, headers=auth)
    assert refused.status_code == 403
    assert refused.get_json()["code"] == "tool_disabled"
    assert client.get(f"/cache/rush/{TOOL_KEYS['rush']}", headers=auth).data == BODY
    tool_cache.set_tool(tenant, "gradle", enabled=True)
    assert client.get(f"/cache/gradle/{TOOL_KEYS['gradle']}", headers=auth).data == BODY


def test_over_the_storage_quota_a_put_is_403_and_reads_still_serve(client, auth, tenant):
    client.put(f"/cache/gradle/{TOOL_KEYS['gradle']}", data=BODY, headers=auth)
    tenants.update_tenant(tenant, storage_quota_bytes=len(BODY) + 10)
    response = client.put("/cache/gradle/another", data=BODY, headers=auth)
    assert response.status_code == 403
    assert response.get_json()["code"] == "over_limit"
    assert client.get(f"/cache/gradle/{TOOL_KEYS['gradle']}", headers=auth).data == BODY


# ------------------------------------------------------------ usage, stats


def test_stats_show_hits_misses_bytes_and_entries_per_tool(client, auth, tenant, runner):
    client.put(f"/cache/ccache/{TOOL_KEYS['ccache']}", data=BODY, headers=auth)
    client.get(f"/cache/ccache/{TOOL_KEYS['ccache']}", headers=auth)
    client.get("/cache/ccache/ab/missing", headers=auth)
    client.put(f"/v1/cache/{NX_HASH}", data=b"nx", headers=auth)
    result = runner.invoke(args=["tenants", "stats", "acme"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["tools"]["ccache"] == {
        "enabled": True,
        "hits": 1,
        "misses": 1,
        "bytes_served": len(BODY),
        "bytes_uploaded": len(BODY),
        "entries": 1,
        "bytes_stored": len(BODY),
    }
    assert figures["tools"]["nx"]["entries"] == 1
    assert figures["tools"]["nx"]["bytes_uploaded"] == 2
    assert figures["tools"]["turbo"]["entries"] == 0
    # The tenant's totals include every tool.
    assert figures["hits"] == 1 and figures["misses"] == 1


def test_set_tool_cli_turns_a_tool_off_and_on(runner, tenant, client, auth):
    result = runner.invoke(args=["tenants", "set-tool", "acme", "bazel", "off"])
    assert result.exit_code == 0, result.output
    db.session.refresh(tenant)
    assert not tool_cache.tool_enabled(tenant, "bazel")
    assert client.put(f"/cache/bazel/{TOOL_KEYS['bazel']}", data=BODY, headers=auth).status_code == 403
    assert runner.invoke(args=["tenants", "set-tool", "acme", "bazel", "on"]).exit_code == 0
    assert client.put(f"/cache/bazel/{TOOL_KEYS['bazel']}", data=BODY, headers=auth).status_code == 200
    assert runner.invoke(args=["tenants", "set-tool", "acme", "maven", "on"]).exit_code != 0


# ------------------------------------------------------------- isolation


@pytest.mark.parametrize("tool", sorted(TOOL_KEYS))
def test_another_tenants_key_never_reads_or_overwrites_an_entry(client, auth, other, tool):
    _, other_auth = other
    url = f"/cache/{tool}/{TOOL_KEYS[tool]}"
    assert client.put(url, data=BODY, headers=auth).status_code == 200
    assert client.get(url, headers=other_auth).status_code == 404
    assert client.head(url, headers=other_auth).status_code == 404
    assert client.put(url, data=BODY, headers=other_auth).status_code == 200
    # Each tenant now has its own entry; the first one's is untouched.
    assert entries() == 2
    assert client.get(url, headers=auth).data == BODY


def test_another_tenants_key_never_reads_an_nx_entry(client, auth, other):
    _, other_auth = other
    client.put(f"/v1/cache/{NX_HASH}", data=BODY, headers=auth)
    assert client.get(f"/v1/cache/{NX_HASH}", headers=other_auth).status_code == 404
    # ...and its own PUT is its own entry, not a 409 on the first tenant's.
    assert client.put(f"/v1/cache/{NX_HASH}", data=b"x", headers=other_auth).status_code == 200


def test_a_revoked_key_reads_nothing(client, tenant, tenant_and_key):
    _, key = tenant_and_key
    url = f"/cache/rush/{TOOL_KEYS['rush']}"
    client.put(url, data=BODY, headers=bearer(key))
    (api_key,) = tenants.list_keys(tenant)
    tenants.revoke_key(tenant, api_key.id)
    assert client.get(url, headers=bearer(key)).status_code == 401
    assert client.get(url, headers=basic(key)).status_code == 401


# ------------------------------------------------------------- the document


def test_responses_match_the_openapi_document(client, auth, tenant):
    nx = "/v1/cache/{hash}"
    assert_documented(client.get(f"/v1/cache/{NX_HASH}", headers=auth), nx)
    assert_documented(client.put(f"/v1/cache/{NX_HASH}", data=BODY, headers=auth), nx)
    assert_documented(client.put(f"/v1/cache/{NX_HASH}", data=BODY, headers=auth), nx)
    assert_documented(client.get(f"/v1/cache/{NX_HASH}", headers=auth), nx)
    assert_documented(client.get(f"/v1/cache/{NX_HASH}"), nx)
    tool = "/cache/{tool}/{key}"
    url = f"/cache/bazel/cas/{SHA}"
    assert_documented(client.get(url, headers=auth), tool)
    assert_documented(client.put(url, data=BODY, headers=auth), tool)
    assert_documented(client.put(f"/cache/bazel/cas/{'0' * 64}", data=BODY, headers=auth), tool)
    assert_documented(client.get(url, headers=auth), tool)
    assert_documented(client.head(url, headers=auth), tool)
    assert_documented(client.get("/cache/rush/a/../b", headers=auth), tool)
    assert_documented(client.put(url, data=BODY), tool)
    tenants.update_tenant(tenant, cache_status="paused")
    assert_documented(client.put("/cache/rush/abc", data=BODY, headers=auth), tool)
    assert_documented(client.put("/cache/gradle/abc", data=BODY, headers=auth), tool)


def test_with_s3_redirects_only_tools_that_follow_them_are_redirected(app, client, auth, monkeypatch):
    if app.config["STORAGE_BACKEND"] != "s3":
        pytest.skip("presigned redirects need an object store (the postgresql-s3 variant)")
    monkeypatch.setitem(app.config, "DOWNLOAD_MODE", "redirect")
    for tool in ("ccache", "bazel", "gradle", "rush", "sccache"):
        client.put(f"/cache/{tool}/{TOOL_KEYS[tool]}", data=BODY, headers=auth)
    client.put(f"/v1/cache/{NX_HASH}", data=BODY, headers=auth)
    # ccache's and Bazel's HTTP clients follow no redirect: Hoard sends the bytes.
    for tool in ("ccache", "bazel"):
        got = client.get(f"/cache/{tool}/{TOOL_KEYS[tool]}", headers=auth)
        assert (got.status_code, got.data) == (200, BODY)
    followers = [f"/cache/{tool}/{TOOL_KEYS[tool]}" for tool in ("gradle", "rush", "sccache")]
    for url in (*followers, f"/v1/cache/{NX_HASH}"):
        redirected = client.get(url, headers=auth)
        assert redirected.status_code == 302, url
        assert requests.get(redirected.headers["Location"], timeout=10).content == BODY
