"""Tenant isolation in the web console: every console route, from tenant B's
admin session, aimed at tenant A's objects. B gets the answer a missing
object gets, no page shows anything of A's, and A's world is unchanged. The
routes come from the url_map, so a new console page cannot escape."""

import pytest

from app.extensions import db
from app.models import ApiKey, Artifact
from app.services import tenants
from tests.console.helpers import TOKEN, sign_in
from tests.factories import make_artifact, make_cache_entry, make_tenant

pytestmark = pytest.mark.storage

A_FILENAME = "alpha-secret-report-5b1e.txt"
A_SESSION = "alpha-session-77c2"
A_AGENT = "alpha-agent-0d3f"
A_HASH = "a1a1a1a1a1a1a1a1"

# (endpoint, method) -> (path template, form fields, expected status)
CASES = {
    ("console.sign_in", "GET"): ("/", {}, 302),
    ("console.sign_in_post", "POST"): ("/", {"key": "B_KEY"}, 303),
    ("console.sign_out", "POST"): ("/console/sign-out", {}, 303),
    ("console.overview", "GET"): ("/console/?range=90d", {}, 200),
    ("console.build_cache", "GET"): ("/console/cache", {}, 200),
    ("console.update_cache_settings", "POST"): (
        "/console/cache",
        {"cache_status": "disabled", "cache_retention_days": "2", "cache_max_bytes": "1KiB"},
        303,
    ),
    ("console.artifacts", "GET"): ("/console/artifacts?created_after=2000-01-01", {}, 200),
    ("console.session_list", "GET"): ("/console/sessions", {}, 200),
    ("console.artifact", "GET"): ("/console/artifacts/{artifact}", {}, 404),
    ("console.download_artifact", "GET"): ("/console/artifacts/{artifact}/download", {}, 404),
    ("console.create_link", "POST"): ("/console/artifacts/{artifact}/links", {"days": "1"}, 404),
    ("console.delete_artifact", "POST"): ("/console/artifacts/{artifact}/delete", {}, 404),
    ("console.keys", "GET"): ("/console/keys", {}, 200),
    ("console.create_key", "POST"): ("/console/keys", {"role": "admin"}, 200),
    ("console.revoke_key", "POST"): ("/console/keys/{key}/revoke", {}, 404),
}
# Flask's HEAD for each GET answers as the GET does; the static files hold
# nothing of any tenant's.
NOT_TENANT_DATA = {"console.static"}


def _routes(app) -> set[tuple[str, str]]:
    return {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("console.") and rule.endpoint not in NOT_TENANT_DATA
        for method in rule.methods - {"OPTIONS", "HEAD"}
    }


def test_the_matrix_covers_every_console_route(app):
    assert _routes(app) == set(CASES)


@pytest.fixture
def world(app):
    a, a_key = make_tenant("alpha")
    artifact = make_artifact(a, filename=A_FILENAME, session_id=A_SESSION, agent_id=A_AGENT)
    make_cache_entry(a, A_HASH, b"alpha cache bytes", duration_ms=1234)
    b, _ = make_tenant("bravo")
    _, b_key = tenants.create_key(b, admin=True)
    a_key_row = db.session.scalar(db.select(ApiKey).where(ApiKey.tenant_id == a.id))
    return {"a": a, "a_key": a_key, "artifact": artifact.id, "key": a_key_row.id, "b_key": b_key}


@pytest.mark.parametrize("case", sorted(CASES), ids="-".join)
def test_b_session_never_reaches_a(client, world, case):
    path, form, expected = CASES[case]
    path = path.format(artifact=world["artifact"], key=world["key"])
    sign_in(client, world["b_key"])
    _, method = case
    if method == "POST":
        page = client.get("/console/artifacts").get_data(as_text=True)
        data = {name: world["b_key"] if value == "B_KEY" else value for name, value in form.items()}
        response = client.post(path, data={**data, "csrf_token": TOKEN.search(page).group(1)})
    else:
        response = client.get(path)
    assert response.status_code == expected, response.get_data(as_text=True)[:300]
    body = response.get_data(as_text=True)
    for secret in (A_FILENAME, A_SESSION, A_AGENT, A_HASH, world["artifact"], world["a_key"][-4:], "alpha"):
        assert secret not in body, (case, secret)
    # A's world is as it was.
    a = world["a"]
    db.session.refresh(a)
    assert (a.cache_status, a.cache_retention_days, a.cache_max_bytes) == ("enabled", 30, None)
    assert db.session.get(Artifact, world["artifact"]).deleted_at is None
    assert db.session.get(ApiKey, world["key"]).revoked_at is None
    assert len(tenants.list_keys(a)) == 1
