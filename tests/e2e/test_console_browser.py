"""The web console in headless Chromium against Hoard under gunicorn: sign
in, the overview after a real turbo run (hit rate and time saved as turbo's
--summarize reports them), artifacts browsed and filtered, keys created and
revoked (the API follows), a build tool switched off and on (its cache
follows), sign-out, roles, tenant isolation and CSRF.
Every page is screenshotted to var/screenshots/, and no page asks anything
of any origin but Hoard's."""

import base64
import re
import secrets
from pathlib import Path

import pytest
import requests

from app.console import filters
from tests.e2e import browser as chromium
from tests.e2e import turbo
from tests.e2e.browser import screenshot, sign_in


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        chromium.services_env.missing("playwright is not installed (requirements-dev.txt)")
    with sync_playwright() as playwright:
        launched = chromium.launch(playwright)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, hoard):
    """A fresh browser profile; every request it makes must go to Hoard."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=hoard.url)
    elsewhere = []
    context.on(
        "request",
        lambda request: None if request.url.startswith(hoard.url) else elsewhere.append(request.url),
    )
    page = context.new_page()
    yield page
    context.close()
    assert elsewhere == [], "the console asked another origin"


def admin_key(hoard, tenant) -> str:
    out = hoard.flask("keys", "create", tenant.slug, "--admin")
    return re.search(r"(ak_live_[A-Za-z0-9]{32})", out).group(1)


def upload(hoard, key: str, filename: str, data: bytes, **fields) -> dict:
    body = {"filename": filename, "content": base64.b64encode(data).decode(), **fields}
    response = requests.post(
        f"{hoard.url}/v1/artifacts", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert response.status_code == 201, response.text
    return response.json()


def whoami(hoard, key: str) -> int:
    return requests.get(
        f"{hoard.url}/v1/whoami", headers={"Authorization": f"Bearer {key}"}, timeout=10
    ).status_code


@pytest.fixture(scope="module")
def monorepo(turbo_binary, tmp_path_factory) -> Path:
    return turbo.generate_monorepo(tmp_path_factory.mktemp("console-turbo") / "repo")


def test_overview_after_a_real_turbo_run_matches_its_summary(page, hoard, new_tenant, turbo_binary, monorepo):
    tenant = new_tenant()
    runs = []
    for _ in range(2):
        turbo.wipe(monorepo)
        run = turbo.run_build(turbo_binary, monorepo, api=hoard.url, token=tenant.key, team=tenant.slug)
        assert run.returncode == 0, run.output
        runs.append(run)
    tasks = [task for run in runs for task in run.tasks.values()]
    remote_hits = [t for t in tasks if (t["cache"]["status"], t["cache"].get("source")) == ("HIT", "REMOTE")]
    assert len(remote_hits) == len(turbo.PACKAGES)  # the second run replayed every task
    saved_ms = sum(task["cache"]["timeSaved"] for task in remote_hits)
    # turbo's own figure: cached / attempted over both runs.
    cached = sum(run.summary["execution"]["cached"] for run in runs)
    attempted = sum(run.summary["execution"]["attempted"] for run in runs)

    sign_in(page, hoard.url, admin_key(hoard, tenant))
    assert page.locator("#remote-hit-rate").inner_text() == f"{cached / attempted * 100:.1f}%"
    assert page.locator("#time-saved-remote").get_attribute("data-ms") == str(saved_ms)
    assert page.locator("#time-saved-remote").inner_text() == filters.duration(saved_ms)
    assert page.locator("#time-saved").inner_text() == f"{saved_ms / 3_600_000:,.2f} h"  # local: off
    assert page.locator("#v8-requests").inner_text() == (
        f"{len(remote_hits)} hits, {len(turbo.PACKAGES)} misses, {len(turbo.PACKAGES)} uploads"
    )
    assert page.locator("svg[role=img]").count() == 4
    screenshot(page, "overview")
    for period in ("7d", "30d", "90d"):
        page.get_by_role("link", name={"7d": "7 days", "30d": "30 days", "90d": "90 days"}[period]).click()
        assert page.locator("#remote-hit-rate").inner_text() == f"{cached / attempted * 100:.1f}%"
    screenshot(page, "overview-90d")
    page.get_by_role("link", name="Build cache").click()
    for task in remote_hits:
        assert page.get_by_text(task["hash"]).count() >= 1
    screenshot(page, "build-cache")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.get_by_role("link", name="Overview").click()
    screenshot(page, "overview-phone")
    page.set_viewport_size({"width": 640, "height": 450})  # 1280 x 900 at 200% zoom
    screenshot(page, "overview-zoom-200")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_browse_and_filter_artifacts(page, hoard, new_tenant):
    tenant = new_tenant()
    run = f"run-{secrets.token_hex(3)}"
    upload(
        hoard,
        tenant.key,
        "build.log",
        b"log lines",
        session_id=run,
        agent_id="ci-bot",
        metadata={"branch": "main"},
    )
    upload(hoard, tenant.key, "report.html", b"<p>report</p>", session_id=run, metadata={"branch": "dev"})
    upload(hoard, tenant.key, "other.txt", b"other", session_id="elsewhere")
    seal = requests.post(
        f"{hoard.url}/v1/sessions/{run}/seal", headers={"Authorization": f"Bearer {tenant.key}"}, timeout=10
    )
    assert seal.status_code == 200

    sign_in(page, hoard.url, tenant.key)
    page.get_by_role("link", name="Artifacts").click()
    rows = page.locator("#artifacts tbody tr")
    assert rows.count() == 3
    page.get_by_label("Session").fill(run)
    page.get_by_label("Metadata (key=value)").fill("branch=main")
    page.get_by_role("button", name="Filter").click()
    assert rows.count() == 1 and "build.log" in rows.first.inner_text()
    screenshot(page, "artifacts")
    page.get_by_role("link", name="build.log").click()
    assert page.locator("#metadata").inner_text().split() == ["branch", "main"]
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    assert Path(download.value.path()).read_bytes() == b"log lines"
    screenshot(page, "artifact")
    page.get_by_role("link", name="Sessions").click()
    sealed_row = page.locator("#sessions tr", has_text=run)
    assert "sealed" in sealed_row.inner_text()
    assert "sealed" not in page.locator("#sessions tr", has_text="elsewhere").inner_text()
    screenshot(page, "sessions")


def test_an_admin_turns_a_build_tool_off_and_on(page, hoard, new_tenant):
    tenant = new_tenant()
    url = f"{hoard.url}/cache/gradle/0123456789abcdef"
    auth = {"Authorization": f"Bearer {tenant.key}"}
    sign_in(page, hoard.url, admin_key(hoard, tenant))
    page.get_by_role("link", name="Build cache").click()

    page.get_by_label("gradle").uncheck()
    page.get_by_role("button", name="Save settings").click()
    assert page.get_by_role("status").inner_text() == "Settings saved."
    assert not page.get_by_label("gradle").is_checked() and page.get_by_label("bazel").is_checked()
    assert requests.put(url, data=b"task output", headers=auth, timeout=10).status_code == 403

    page.get_by_label("gradle").check()
    page.get_by_role("button", name="Save settings").click()
    assert page.get_by_label("gradle").is_checked()
    assert requests.put(url, data=b"task output", headers=auth, timeout=10).status_code in (200, 201)
    assert requests.get(url, headers=auth, timeout=10).content == b"task output"


def test_create_and_revoke_a_key_then_sign_out(page, hoard, new_tenant):
    tenant = new_tenant()
    sign_in(page, hoard.url, admin_key(hoard, tenant))
    page.get_by_role("link", name="Keys").click()
    page.get_by_label("Role").select_option("member")
    page.get_by_role("button", name="Create key").click()
    created = page.locator("#new-key").input_value()
    assert re.fullmatch(r"ak_live_[A-Za-z0-9]{32}", created)
    page.get_by_role("button", name="Copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == created
    screenshot(page, "keys-created")
    assert whoami(hoard, created) == 200

    page.get_by_role("button", name=re.compile(f"Revoke key .* ending {created[-4:]}")).click()
    assert "revoked" in page.locator("#keys tr", has_text=created[-4:]).inner_text()
    assert whoami(hoard, created) == 401
    assert whoami(hoard, tenant.key) == 200
    screenshot(page, "keys")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{hoard.url}/")
    page.goto(f"{hoard.url}/console/artifacts")
    assert page.url == f"{hoard.url}/"  # no session: back to sign-in
    screenshot(page, "sign-in")


def test_a_member_key_cannot_reach_key_management(page, hoard, new_tenant):
    tenant = new_tenant()
    sign_in(page, hoard.url, tenant.key)
    assert page.get_by_role("link", name="Keys").count() == 0
    response = page.goto(f"{hoard.url}/console/keys")
    assert response.status == 403
    assert "Only an admin key" in page.content()
    screenshot(page, "keys-forbidden")


def test_a_session_never_shows_another_tenants_data(page, hoard, new_tenant):
    a, b = new_tenant(), new_tenant()
    theirs = upload(hoard, b.key, "bravo-secret.txt", b"b", session_id="bravo-session")
    upload(hoard, a.key, "alpha.txt", b"a")
    sign_in(page, hoard.url, a.key)
    for path in ("/console/", "/console/cache", "/console/artifacts", "/console/sessions"):
        page.goto(f"{hoard.url}{path}")
        content = page.content()
        assert "bravo-secret" not in content and "bravo-session" not in content, path
    response = page.goto(f"{hoard.url}/console/artifacts/{theirs['artifact_id']}")
    assert response.status == 404
    screenshot(page, "not-found")


def test_posts_without_the_csrf_token_are_refused(page, hoard, new_tenant):
    tenant = new_tenant()
    sign_in(page, hoard.url, admin_key(hoard, tenant))
    refused = page.request.post(f"{hoard.url}/console/keys", form={"role": "admin"})
    assert refused.status == 403
    forged = page.request.post(f"{hoard.url}/console/keys", form={"role": "admin", "csrf_token": "x" * 32})
    assert forged.status == 403
    page.goto(f"{hoard.url}/console/keys")
    assert page.locator("#keys tbody tr").count() == 2  # the CLI's key and the admin key


def test_the_keyboard_reaches_every_page(page, hoard, new_tenant):
    tenant = new_tenant()
    sign_in(page, hoard.url, tenant.key)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    visited = []
    for _ in range(6):
        page.keyboard.press("Tab")
        visited.append(page.evaluate("document.activeElement.textContent").strip())
    assert {"Overview", "Build cache", "Artifacts", "Sessions"} <= set(visited)
