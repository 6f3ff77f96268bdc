"""The overview and build-cache pages show the tenant's figures: what turbo
reported and what /v8 served, for each range, charts with their numbers."""

import re
import uuid

import pytest

from app.services import tenants, tool_cache
from tests.console.helpers import sign_in

pytestmark = pytest.mark.storage


def _text(page: str, element_id: str) -> str:
    return re.search(rf'id="{element_id}"[^>]*>([^<]*)<', page).group(1)


@pytest.fixture
def traffic(client, tenant, auth):
    client.put("/v8/artifacts/aaa111", data=b"x" * 3000, headers=auth)
    for _ in range(3):
        assert client.get("/v8/artifacts/aaa111", headers=auth).status_code == 200
    assert client.get("/v8/artifacts/bbb222", headers=auth).status_code == 404
    session = str(uuid.uuid4())
    events = [
        {"source": "REMOTE", "event": "HIT", "hash": "aaa111", "duration": 3_000_000},
        {"source": "REMOTE", "event": "HIT", "hash": "aaa111", "duration": 600_000},
        {"source": "REMOTE", "event": "MISS", "hash": "bbb222"},
        {"source": "LOCAL", "event": "HIT", "hash": "ccc333", "duration": 1_800_000},
    ]
    answer = client.post(
        "/v8/artifacts/events",
        json=[{"sessionId": session, **event} for event in events],
        headers={**auth, "x-artifact-client-ci": "GITHUB_ACTIONS"},
    )
    assert answer.status_code == 200


@pytest.mark.parametrize("period", ["24h", "7d", "30d", "90d"])
def test_the_overview_shows_the_figures_for_every_range(client, tenant, auth, traffic, period):
    _, admin = tenants.create_key(tenant, admin=True)
    sign_in(client, admin)
    response = client.get(f"/console/?range={period}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert _text(page, "remote-hit-rate") == "66.7%"
    assert _text(page, "local-hit-rate") == "100.0%"
    assert _text(page, "time-saved") == "1.50 h"
    assert 'data-ms="5400000" title="5,400.0 s"' in page
    assert _text(page, "time-saved-remote") == "1.00 h"
    assert _text(page, "time-saved-local") == "30.0 min"
    assert _text(page, "v8-requests") == "3 hits, 1 misses, 1 uploads"
    assert "8.8 KiB" in page  # 9,000 bytes served
    # Four charts, each an SVG with a title and its numbers in a table.
    assert page.count("<svg") == 4 and page.count("<table>") >= 4
    assert 'role="img"' in page and "<title" in page
    assert "Remote hits: 2 in total" in page  # the chart's description
    assert '<th scope="row">CI (x-artifact-client-ci)</th><td>4</td>' in page


def test_an_unknown_range_is_a_400_page(client, member_key_signed_in):
    response = client.get("/console/?range=1y")
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "24h" in response.get_data(as_text=True)


@pytest.fixture
def member_key_signed_in(client, tenant_and_key):
    sign_in(client, tenant_and_key[1])


def test_the_build_cache_page_lists_entries_and_settings(client, tenant, auth, traffic, member_key_signed_in):
    page = client.get("/console/cache").get_data(as_text=True)
    for heading in ("Largest entries", "Read most", "Evicted soonest"):
        section = page.split(heading)[1]
        assert "aaa111" in section.split("</section>")[0], heading
    assert 'id="cache-status">enabled<' in page  # read-only for a member
    assert '<form method="post" action="/console/cache"' not in page


def test_another_tenants_session_sees_none_of_it(client, traffic, other):
    _, other_key_headers = other
    key = other_key_headers["Authorization"].split()[1]
    sign_in(client, key)
    page = client.get("/console/?range=90d").get_data(as_text=True)
    assert _text(page, "remote-hit-rate") == "no data"
    assert "aaa111" not in client.get("/console/cache").get_data(as_text=True)


def test_the_overview_shows_each_build_tool(client, tenant, auth):
    assert client.put("/cache/gradle/0123abcd", data=b"g" * 2048, headers=auth).status_code in (200, 201)
    assert client.get("/cache/gradle/0123abcd", headers=auth).status_code == 200
    assert client.get("/cache/gradle/0123abce", headers=auth).status_code == 404
    tool_cache.set_tool(tenant, "bazel", enabled=False)
    _, admin = tenants.create_key(tenant, admin=True)
    sign_in(client, admin)
    page = client.get("/console/?range=24h").get_data(as_text=True)
    row = re.search(r'<tr><th scope="row">gradle</th>(.*?)</tr>', page).group(1)
    cells = re.findall(r"<td>([^<]*)</td>", row)
    # on, 1 hit, 1 miss, 50%, 1 upload, 2 KiB served, 2 KiB uploaded, 1 entry, 2 KiB stored
    assert cells == ["on", "1", "1", "50.0%", "1", "2.0 KiB", "2.0 KiB", "1", "2.0 KiB"]
    assert re.search(r'<tr><th scope="row">bazel</th><td>off</td>', page)
    assert re.search(r'<tr><th scope="row">turbo</th><td>on</td><td>0</td>', page)
