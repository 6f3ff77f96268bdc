"""The web console through Flask's test client: sign-in and sessions, CSRF,
roles, tenant isolation, HTML errors inside the console only, headers, and
the key-management and artifact actions with their effect on the API."""

import io
from datetime import timedelta

import pytest
from werkzeug.datastructures import MultiDict

from app import create_app
from app.extensions import db
from app.models import ApiKey
from app.services import tenants, tool_cache, usage
from tests import clock
from tests.conftest import base_overrides
from tests.console.helpers import csrf, post, sign_in
from tests.factories import bearer, make_artifact

pytestmark = pytest.mark.storage


@pytest.fixture
def admin_key(tenant):
    _, key = tenants.create_key(tenant, admin=True)
    return key


@pytest.fixture
def member_key(tenant_and_key):
    return tenant_and_key[1]


def test_sign_in_page_is_html_with_a_strict_policy_and_a_protected_form(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    body = page.get_data(as_text=True)
    assert 'name="csrf_token"' in body and 'name="key"' in body
    policy = page.headers["Content-Security-Policy"]
    assert (
        "default-src 'none'" in policy
        and "script-src 'self'" in policy
        and "frame-ancestors 'none'" in policy
    )
    assert "unsafe-inline" not in policy
    assert page.headers["Cache-Control"] == "private, no-store"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "<script>" not in body  # scripts come from /console/static only
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=" in cookie
    assert "Secure" not in cookie


def test_the_cookie_is_secure_over_https(client):
    page = client.get("/", base_url="https://localhost")
    assert "Secure" in page.headers["Set-Cookie"]


def test_sign_in_browse_and_sign_out(client, tenant, member_key):
    artifact = make_artifact(tenant, b"x", filename="report.txt")
    assert client.get("/console/artifacts").status_code == 302  # no session yet
    response = sign_in(client, member_key)
    assert response.headers["Location"].endswith("/console/")
    assert client.get("/").status_code == 302  # signed in: / goes to the overview
    listing = client.get("/console/artifacts")
    assert listing.status_code == 200
    assert "report.txt" in listing.get_data(as_text=True)
    detail = client.get(f"/console/artifacts/{artifact.id}")
    assert artifact.id in detail.get_data(as_text=True)
    download = client.get(f"/console/artifacts/{artifact.id}/download")
    assert download.status_code == 200 and download.data == b"x"
    assert download.headers["Content-Security-Policy"] == "sandbox"
    assert "attachment" in download.headers["Content-Disposition"]
    out = post(client, "/console/sign-out")
    assert out.status_code == 303
    assert client.get("/console/artifacts").status_code == 302


def test_signing_out_ends_a_copied_cookie_too(app, client, member_key):
    sign_in(client, member_key)
    copied = client.get_cookie("hoard_console").value
    elsewhere = app.test_client()
    elsewhere.set_cookie("hoard_console", copied)
    assert elsewhere.get("/console/cache").status_code == 200
    assert post(client, "/console/sign-out").status_code == 303
    assert elsewhere.get("/console/cache").status_code == 302  # to the sign-in page
    # the key itself works on: a new sign-in starts a session that holds
    clock.advance(timedelta(milliseconds=1))
    sign_in(client, member_key)
    assert client.get("/console/cache").status_code == 200


def test_a_wrong_key_is_refused_with_the_form_again(client, member_key):
    for key in ("ak_live_" + "0" * 32, "not a key", ""):
        response = client.post("/", data={"key": key, "csrf_token": csrf(client)})
        assert response.status_code == 401
        body = response.get_data(as_text=True)
        assert "not valid" in body and 'name="key"' in body
    assert client.get("/console/artifacts").status_code == 302


@pytest.mark.parametrize(
    "path, data",
    [
        ("/", {"key": "KEY"}),
        ("/console/sign-out", {}),
        ("/console/keys", {"role": "admin"}),
        ("/console/cache", {"cache_status": "disabled", "cache_retention_days": "3"}),
    ],
)
@pytest.mark.parametrize("token", [None, "forged"])
def test_posts_without_the_session_token_are_refused(client, tenant, admin_key, path, data, token):
    sign_in(client, admin_key)
    data = {name: admin_key if value == "KEY" else value for name, value in data.items()}
    if token is not None:
        data["csrf_token"] = token
    response = client.post(path, data=data)
    assert response.status_code == 403
    assert response.mimetype == "text/html"
    assert "did not come from the console" in response.get_data(as_text=True)
    db.session.refresh(tenant)
    assert tenant.cache_status == "enabled"
    assert len(tenants.list_keys(tenant)) == 2
    assert client.get("/console/artifacts").status_code == 200  # still signed in


def test_a_token_from_before_sign_in_is_not_the_session_token(client, admin_key):
    before = csrf(client)
    sign_in(client, admin_key)
    assert client.post("/console/keys", data={"role": "member", "csrf_token": before}).status_code == 403


def test_a_member_key_sees_but_cannot_manage(client, tenant, member_key):
    artifact = make_artifact(tenant)
    sign_in(client, member_key)
    keys = client.get("/console/keys")
    assert keys.status_code == 403 and keys.mimetype == "text/html"
    assert "admin key" in keys.get_data(as_text=True)
    assert "/console/keys" not in client.get("/console/artifacts").get_data(as_text=True)
    for path, data in [
        ("/console/keys", {"role": "member"}),
        ("/console/keys/1/revoke", {}),
        ("/console/cache", {"cache_status": "disabled", "cache_retention_days": "3"}),
        (f"/console/artifacts/{artifact.id}/delete", {}),
        (f"/console/artifacts/{artifact.id}/links", {"days": "1"}),
    ]:
        assert post(client, path, data).status_code == 403, path
    db.session.refresh(tenant)
    assert tenant.cache_status == "enabled"
    assert len(tenants.list_keys(tenant)) == 1


def test_an_admin_creates_and_revokes_keys_and_the_api_follows(client, tenant, admin_key):
    sign_in(client, admin_key)
    created = post(client, "/console/keys", {"role": "member"}, token_from="/console/keys")
    assert created.status_code == 200
    body = created.get_data(as_text=True)
    plaintext = body.split('id="new-key" class="copy-source" readonly value="')[1].split('"')[0]
    assert client.get("/v1/whoami", headers=bearer(plaintext)).status_code == 200
    new_id = db.session.scalar(db.select(ApiKey.id).where(ApiKey.last_4 == plaintext[-4:]))
    again = client.get("/console/keys").get_data(as_text=True)
    assert plaintext not in again  # shown once
    revoked = post(client, f"/console/keys/{new_id}/revoke", token_from="/console/keys")
    assert revoked.status_code == 303
    assert client.get("/v1/whoami", headers=bearer(plaintext)).status_code == 401
    assert f"Key …{plaintext[-4:]} revoked" in client.get(revoked.location).get_data(as_text=True)


def test_a_link_cannot_put_words_in_the_consoles_notices(client, tenant, admin_key):
    live_key, _ = tenants.create_key(tenant)
    sign_in(client, admin_key)
    for spoof in ("ANY%20TEXT", str(live_key.id), "99999", "-1"):
        assert "revoked:" not in client.get(f"/console/keys?revoked={spoof}").get_data(as_text=True), spoof
    for spoof in ("Your%20account%20is%20closed", "art_short", "art_0123456789abcdef%20and%20more"):
        assert "deleted." not in client.get(f"/console/artifacts?deleted={spoof}").get_data(as_text=True)
    shaped = client.get("/console/artifacts?deleted=art_0123456789abcdef").get_data(as_text=True)
    assert "Artifact art_0123456789abcdef deleted." in shaped


def test_revoking_a_key_id_no_database_holds_is_a_404(client, admin_key):
    sign_in(client, admin_key)
    for key_id in ("99999999999999999999999", "2147483648"):
        response = post(client, f"/console/keys/{key_id}/revoke", token_from="/console/keys")
        assert response.status_code == 404 and response.mimetype == "text/html"


def test_revoking_the_sessions_own_key_ends_the_session(client, tenant, admin_key):
    sign_in(client, admin_key)
    own = db.session.scalar(db.select(ApiKey.id).where(ApiKey.last_4 == admin_key[-4:]))
    assert post(client, f"/console/keys/{own}/revoke", token_from="/console/keys").status_code == 303
    assert client.get("/console/keys").status_code == 302


def test_a_revoked_key_ends_its_session_at_the_next_request(client, tenant, member_key):
    sign_in(client, member_key)
    assert client.get("/console/artifacts").status_code == 200
    key_id = db.session.scalar(db.select(ApiKey.id).where(ApiKey.last_4 == member_key[-4:]))
    tenants.revoke_key(tenant, key_id)
    assert client.get("/console/artifacts").status_code == 302


def test_a_session_expires(client, app, member_key):
    sign_in(client, member_key)
    clock.advance(timedelta(seconds=app.config["CONSOLE_SESSION_SECONDS"] + 1))
    assert client.get("/console/artifacts").status_code == 302


def test_a_session_sees_only_its_own_tenant(client, tenant, member_key, other):
    mine = make_artifact(tenant, filename="mine.txt")
    theirs = make_artifact(other[0], filename="theirs.txt", session_id="their-session")
    sign_in(client, member_key)
    listing = client.get("/console/artifacts").get_data(as_text=True)
    assert "mine.txt" in listing and "theirs.txt" not in listing
    assert "theirs.txt" not in client.get("/console/artifacts?session_id=their-session").get_data(
        as_text=True
    )
    assert "their-session" not in client.get("/console/sessions").get_data(as_text=True)
    for path in (f"/console/artifacts/{theirs.id}", f"/console/artifacts/{theirs.id}/download"):
        response = client.get(path)
        assert response.status_code == 404 and response.mimetype == "text/html", path
    assert mine.id in client.get(f"/console/artifacts/{mine.id}").get_data(as_text=True)


def test_errors_are_html_in_the_console_and_json_elsewhere(client, member_key):
    sign_in(client, member_key)
    inside = client.get("/console/no-such-page")
    assert inside.status_code == 404 and inside.mimetype == "text/html"
    outside = client.get("/no-such-page")
    assert outside.status_code == 404 and outside.is_json
    assert outside.json["error"]["code"] == "not_found"
    bad = client.get("/console/artifacts?created_after=yesterday")
    assert bad.status_code == 400 and bad.mimetype == "text/html"
    assert "created_after must be an ISO-8601 timestamp" in bad.get_data(as_text=True)
    assert client.get("/v1/whoami").is_json  # the APIs keep JSON errors


def test_artifact_filters_and_cursors_match_the_api(client, tenant, member_key):
    for index in range(5):
        make_artifact(
            tenant,
            filename=f"f{index}.txt",
            session_id="s1" if index % 2 else "s2",
            agent_id="bot",
            metadata={"branch": "main" if index < 3 else "dev"},
        )
        clock.advance(timedelta(seconds=1))
    sign_in(client, member_key)
    page = client.get("/console/artifacts?meta=branch%3Dmain&session_id=s2").get_data(as_text=True)
    assert "f0.txt" in page and "f2.txt" in page and "f1.txt" not in page and "f3.txt" not in page
    first = client.get("/console/artifacts?limit=2").get_data(as_text=True)
    assert "f4.txt" in first and "f3.txt" in first and "f2.txt" not in first
    next_href = first.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    second = client.get(next_href).get_data(as_text=True)
    assert "f2.txt" in second and "f1.txt" in second and "f4.txt" not in second
    sessions = client.get("/console/sessions").get_data(as_text=True)
    assert "s1" in sessions and "s2" in sessions


@pytest.mark.parametrize("listing", ["/console/artifacts", "/console/sessions"])
def test_the_next_page_link_carries_any_query_as_given(client, tenant, member_key, listing):
    """Query names that mean something to url_for (endpoint, _anchor,
    _external, _method) are only text in the next page's link."""
    for index in range(3):
        make_artifact(tenant, filename=f"f{index}.txt", session_id=f"s{index}", metadata={"branch": "main"})
        clock.advance(timedelta(seconds=1))
    sign_in(client, member_key)
    odd = (
        "endpoint=x&_anchor=top&_external=1&_method=POST&_scheme=https&meta=branch%3Dmain&meta=branch%3Dmain"
    )
    first = client.get(f"{listing}?limit=1&{odd}")
    assert first.status_code == 200, first.get_data(as_text=True)
    next_href = first.get_data(as_text=True).split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    next_href = next_href.replace("&amp;", "&")
    assert next_href.startswith(f"{listing}?") and "#" not in next_href
    assert next_href.count("meta=branch") == 2 and "endpoint=x" in next_href and "cursor=" in next_href
    assert client.get(next_href).status_code == 200


def test_sealed_sessions_are_marked(client, tenant, member_key, auth):
    make_artifact(tenant, session_id="done")
    make_artifact(tenant, session_id="open-one")
    assert client.post("/v1/sessions/done/seal", headers=auth).status_code == 200
    sign_in(client, member_key)
    body = client.get("/console/sessions").get_data(as_text=True)
    done_row = body.split(">done<")[1].split("</tr>")[0]
    open_row = body.split(">open-one<")[1].split("</tr>")[0]
    assert "sealed" in done_row and "sealed" not in open_row


def test_an_admin_links_and_deletes_an_artifact(client, tenant, admin_key):
    artifact = make_artifact(tenant, b"shared bytes")
    sign_in(client, admin_key)
    token_page = f"/console/artifacts/{artifact.id}"
    linked = post(client, f"/console/artifacts/{artifact.id}/links", {"days": "2"}, token_from=token_page)
    assert linked.status_code == 200
    url = (
        linked.get_data(as_text=True)
        .split('id="link-url" class="copy-source" readonly value="')[1]
        .split('"')[0]
    )
    assert "/dl/lnk_" in url
    assert client.get(url[url.index("/dl/") :]).data == b"shared bytes"
    deleted = post(client, f"/console/artifacts/{artifact.id}/delete", token_from=token_page)
    assert deleted.status_code == 303
    assert client.get(url[url.index("/dl/") :]).status_code == 410
    assert client.get(token_page).status_code == 410


def test_an_admin_changes_cache_settings(client, tenant, admin_key, member_key):
    sign_in(client, admin_key)
    data = {"cache_status": "paused", "cache_retention_days": "9", "cache_max_bytes": "2GiB"}
    assert post(client, "/console/cache", data, token_from="/console/artifacts").status_code == 303
    db.session.refresh(tenant)
    assert (tenant.cache_status, tenant.cache_retention_days, tenant.cache_max_bytes) == (
        "paused",
        9,
        2 * 1024**3,
    )
    bad = post(client, "/console/cache", {**data, "cache_retention_days": "0"})
    assert bad.status_code == 400 and "retention" in bad.get_data(as_text=True)
    for huge in ("9" * 400, "99999999999 TiB", "8388608TiB"):
        refused = post(client, "/console/cache", {**data, "cache_max_bytes": huge})
        assert refused.status_code == 400 and "8 EiB" in refused.get_data(as_text=True)
    db.session.refresh(tenant)
    assert tenant.cache_max_bytes == 2 * 1024**3
    cleared = post(client, "/console/cache", {**data, "cache_max_bytes": ""})
    assert cleared.status_code == 303
    db.session.refresh(tenant)
    assert tenant.cache_max_bytes is None


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        (2 * 1024**3, "2GiB"),
        (10**9, "1GB"),
        (3 * 1024**4, "3TiB"),
        (1536 * 1024, "1536KiB"),
        (1234567, "1234567"),
        (10 * 1000**3, "10GB"),  # not 9765625KiB
        (2 * 1000**4, "2TB"),
        (2**53 + 1, str(2**53 + 1)),  # past a float's exact integers
        (2**63 - 1, str(2**63 - 1)),
    ],
)
def test_the_cache_cap_field_keeps_the_value_to_the_byte(client, tenant, admin_key, stored, shown):
    """The field shows the cap in a unit that holds it whole, so saving the
    form unchanged stores exactly what was there."""
    tenants.update_tenant(tenant, cache_max_bytes=stored)
    sign_in(client, admin_key)
    page = client.get("/console/cache").get_data(as_text=True)
    assert f'name="cache_max_bytes" value="{shown}"' in page
    data = {"cache_status": "enabled", "cache_retention_days": "30", "cache_max_bytes": shown}
    assert post(client, "/console/cache", data, token_from="/console/cache").status_code == 303
    db.session.refresh(tenant)
    assert tenant.cache_max_bytes == stored


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("1.5GiB", 3 * 2**29), ("1.3KiB", 1331), ("9007199254740993", 2**53 + 1), ("1." + "9" * 29, 1)],
)
def test_cache_cap_sizes_are_read_exactly(client, tenant, admin_key, typed, stored):
    sign_in(client, admin_key)
    data = {"cache_status": "enabled", "cache_retention_days": "30", "cache_max_bytes": typed}
    assert post(client, "/console/cache", data, token_from="/console/cache").status_code == 303
    db.session.refresh(tenant)
    assert tenant.cache_max_bytes == stored


@pytest.mark.parametrize("typed", ["0.5", "0.9B", "0.0001KiB", "0." + "9" * 30])
def test_a_cap_under_one_byte_is_refused_not_read_as_none(client, tenant, admin_key, typed):
    tenants.update_tenant(tenant, cache_max_bytes=4096)
    sign_in(client, admin_key)
    data = {"cache_status": "enabled", "cache_retention_days": "30", "cache_max_bytes": typed}
    refused = post(client, "/console/cache", data, token_from="/console/cache")
    assert refused.status_code == 400 and "at least one byte" in refused.get_data(as_text=True)
    db.session.refresh(tenant)
    assert tenant.cache_max_bytes == 4096


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--cache-retention-days", "5000", "1 to 3650 days"),
        ("--cache-max-bytes", str(2**63), "cache cap"),
        ("--storage-quota-bytes", str(2**64), "storage quota"),
    ],
)
def test_the_cli_keeps_settings_the_console_can_save(runner, tenant, option, value, message):
    """One bound for the CLI and the form: a value set from the CLI never
    makes the console's form unsavable (nor overflows a column)."""
    result = runner.invoke(args=["tenants", "update", tenant.slug, option, value])
    assert result.exit_code != 0 and message in result.output, result.output
    db.session.refresh(tenant)
    assert (tenant.cache_retention_days, tenant.cache_max_bytes, tenant.storage_quota_bytes) == (
        30,
        None,
        None,
    )


def test_an_admin_turns_build_tools_on_and_off(client, tenant, admin_key, auth):
    sign_in(client, admin_key)
    page = client.get("/console/cache").get_data(as_text=True)
    for tool in tool_cache.TOOLS:
        assert f'name="tools_on" value="{tool}" checked' in page, tool
    settings = {"cache_status": "enabled", "cache_retention_days": "30", "cache_max_bytes": ""}

    # The form's own hidden empty value beside the two ticked tools.
    data = MultiDict([*settings.items(), ("tools_on", ""), ("tools_on", "nx"), ("tools_on", "gradle")])
    assert post(client, "/console/cache", data, token_from="/console/cache").status_code == 303
    db.session.refresh(tenant)
    off = set(tool_cache.TOOLS) - {"nx", "gradle"}
    assert {tool for tool in tool_cache.TOOLS if not tool_cache.tool_enabled(tenant, tool)} == off
    # The switch is the one the caches obey.
    assert client.put("/cache/ccache/ab/cdef", data=b"x", headers=auth).status_code == 403
    assert client.put("/cache/gradle/abcdef01", data=b"x", headers=auth).status_code in (200, 201)
    page = client.get("/console/cache").get_data(as_text=True)
    assert 'value="gradle" checked' in page and 'value="ccache" checked' not in page

    # A post without the field (an older form, a script) changes no tool.
    assert post(client, "/console/cache", settings, token_from="/console/cache").status_code == 303
    db.session.refresh(tenant)
    assert {tool for tool in tool_cache.TOOLS if not tool_cache.tool_enabled(tenant, tool)} == off

    unknown = post(client, "/console/cache", MultiDict([*settings.items(), ("tools_on", "maven")]))
    assert unknown.status_code == 400 and "maven" in unknown.get_data(as_text=True)
    db.session.refresh(tenant)
    assert {tool for tool in tool_cache.TOOLS if not tool_cache.tool_enabled(tenant, tool)} == off

    ticked = [("tools_on", tool) for tool in tool_cache.TOOLS]
    everything = MultiDict([*settings.items(), ("tools_on", ""), *ticked])
    assert post(client, "/console/cache", everything, token_from="/console/cache").status_code == 303
    db.session.refresh(tenant)
    assert tenant.cache_tools_off == ""


class CountingBody(io.RawIOBase):
    """A request body of `size` bytes that records how much was read of it."""

    def __init__(self, size: int):
        self.size, self.taken = size, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        count = min(len(buffer), self.size - self.taken)
        buffer[:count] = b"a" * count
        self.taken += count
        return count


@pytest.mark.parametrize("path", ["/", "/console/sign-out", "/console/cache", "/console/keys"])
@pytest.mark.parametrize("chunked", [False, True], ids=["sized", "chunked"])
def test_a_console_post_larger_than_a_form_is_refused_unread(app, client, admin_key, path, chunked):
    """Form parsing holds a body in memory (or in temporary files): one
    larger than any console form is a 413 page before it is read."""
    sign_in(client, admin_key)
    cap = app.config["CONSOLE_MAX_FORM_BYTES"]
    body = CountingBody(100 * cap)
    # As gunicorn hands a body to the app: the stream itself, its length
    # announced or (chunked) its end marked by the server.
    wsgi = {"wsgi.input": body, "wsgi.input_terminated": chunked}
    wsgi["CONTENT_LENGTH"] = "" if chunked else str(body.size)
    response = client.post(path, content_type="application/x-www-form-urlencoded", environ_overrides=wsgi)
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    assert body.taken <= 2 * cap


def test_a_multipart_console_post_is_capped_too(app, client, admin_key):
    sign_in(client, admin_key)
    cap = app.config["CONSOLE_MAX_FORM_BYTES"]
    response = client.post(
        "/console/cache",
        data={"file": (io.BytesIO(b"x" * (4 * cap)), "big.bin")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413 and response.mimetype == "text/html"
    parts = {f"f{i}": "x" for i in range(300)}  # small, but more parts than any form has
    many = client.post("/console/cache", data=parts, content_type="multipart/form-data")
    assert many.status_code == 413 and many.mimetype == "text/html"


def test_failed_sign_ins_are_rate_limited_per_address(app, tmp_path, member_key):
    overrides = base_overrides(tmp_path, app.config["SQLALCHEMY_DATABASE_URI"])
    overrides.update(RATE_LIMIT_ANONYMOUS="4 per day")  # a window no slow run outlasts
    limited = create_app(overrides)
    try:
        client = limited.test_client()
        token = csrf(client)  # 1
        wrong = {"key": "ak_live_" + "1" * 32, "csrf_token": token}
        assert [client.post("/", data=wrong).status_code for _ in range(3)] == [401, 401, 401]
        refused = client.post("/", data=wrong)
        assert refused.status_code == 429 and refused.mimetype == "text/html"
        assert "Retry-After" in refused.headers
        # Refused before the key is looked at: a right key gets no answer either.
        assert client.post("/", data={"key": member_key, "csrf_token": token}).status_code == 429
        # A session does not lend its tenant's budget to more attempts.
        signed_in = limited.test_client()
        signed_in.environ_base["REMOTE_ADDR"] = "10.1.1.1"
        sign_in(signed_in, member_key)  # 2 of this address's 4
        attempts = [
            signed_in.post(
                "/", data={"key": wrong["key"], "csrf_token": csrf(signed_in, "/console/sessions")}
            )
            for _ in range(3)
        ]
        assert [response.status_code for response in attempts] == [401, 401, 429]
        other_address = limited.test_client()
        assert other_address.get("/", environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code == 200
    finally:
        with limited.app_context():
            db.engine.dispose()


def test_keys_record_their_last_use_at_most_once_a_minute(client, tenant, auth, member_key):
    key = db.session.scalar(db.select(ApiKey).where(ApiKey.last_4 == member_key[-4:]))
    assert key.last_used_at is None
    assert client.get("/v1/whoami", headers=auth).status_code == 200
    usage.flush_counts()
    db.session.refresh(key)
    first = key.last_used_at
    assert first is not None
    clock.advance(timedelta(seconds=30))
    assert client.get("/v1/whoami", headers=auth).status_code == 200
    assert usage.pending_counts().key_uses == {}  # noted a moment ago: nothing to write
    usage.flush_counts()
    db.session.refresh(key)
    assert key.last_used_at == first


def test_cli_makes_admin_keys_and_demo_makes_an_admin(runner, tenant):
    result = runner.invoke(args=["keys", "create", tenant.slug, "--admin"])
    assert result.exit_code == 0 and "admin key" in result.output
    listed = runner.invoke(args=["keys", "list", tenant.slug]).output
    assert "\tadmin\t" in listed and "\tmember\t" in listed
    demo = runner.invoke(args=["demo", "--slug", "demo-co"])
    assert demo.exit_code == 0, demo.output
    demo_tenant = tenants.get_tenant("demo-co")
    assert [key.role for key in tenants.list_keys(demo_tenant)] == ["admin"]


def test_existing_keys_stay_members(tenant, member_key):
    assert [key.role for key in tenants.list_keys(tenant)] == ["member"]


def test_demo_prints_the_console_and_the_exports_filled_in(runner, client):
    result = runner.invoke(args=["demo", "--slug", "demo-co", "--url", "http://hoard.test:8000"])
    assert result.exit_code == 0, result.output
    key = result.output.split("admin API key (shown once, store it now): ")[1].split()[0]
    assert "web console: http://hoard.test:8000/" in result.output
    for line in (
        "export TURBO_API=http://hoard.test:8000",
        f"export TURBO_TOKEN={key}",
        "export TURBO_TEAM=demo-co",
        f"export ARTIFACTA_API_KEY={key}",
    ):
        assert line in result.output
    # the printed key is the tenant's, and works
    assert client.get("/v8/artifacts/status", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    again = runner.invoke(args=["demo", "--slug", "demo-co"])
    assert again.exit_code == 0 and key not in again.output and "export TURBO_TEAM=demo-co" in again.output
