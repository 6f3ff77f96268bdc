"""Without PUBLIC_BASE_URL, links and signed URLs are built from the request's
Host only when it names this server (ALLOWED_HOSTS, loopback, the machine's
name, the bound address); any other Host is refused before anything is made,
so a URL Hoard hands out never points at a host a request chose."""

import socket

import pytest

from app import create_app
from app.extensions import db
from app.models import Artifact, Link
from tests.api.helpers_v1 import assert_error, count_rows, create
from tests.conftest import base_overrides

HASH = "0123456789abcdef"


def _urls(client, auth, artifact_id: str, host: str, **environ) -> dict:
    """Each URL-minting route asked with `host`: its response."""
    headers = {**auth, "Host": host}
    options = {"headers": headers, "environ_overrides": environ}
    return {
        "link": client.post(f"/v1/artifacts/{artifact_id}/links", **options),
        "download-url": client.get(f"/v1/artifacts/{artifact_id}/download-url", **options),
        "download-urls": client.post(
            "/v1/artifacts/batch/download-urls", json={"artifact_ids": [artifact_id]}, **options
        ),
        "upload-url": client.post(
            "/v1/artifacts/upload-url", json={"filename": "b.bin", "size_bytes": 5}, **options
        ),
    }


def _url_of(name: str, response) -> str:
    body = response.get_json()
    if name == "download-urls":
        return body["download_urls"][0]["download_url"]
    return {"link": body.get("url"), "download-url": body.get("download_url")}.get(name) or body["upload_url"]


@pytest.fixture
def artifact_id(client, auth):
    return create(client, auth)["artifact_id"]


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.1.evil.example", "[::2]"]
)
def test_a_host_that_is_not_this_server_is_refused_and_nothing_is_made(client, auth, artifact_id, host):
    before = count_rows(Artifact), count_rows(Link)

    for name, response in _urls(client, auth, artifact_id, host).items():
        error = assert_error(response, 400, "invalid_request")
        assert "ALLOWED_HOSTS" in error["message"] and "PUBLIC_BASE_URL" in error["message"], name

    assert (count_rows(Artifact), count_rows(Link)) == before


def test_a_cache_upload_from_a_host_that_is_not_this_server_gets_a_bare_path(client, auth):
    response = client.put(f"/v8/artifacts/{HASH}", data=b"x", headers={**auth, "Host": "evil.example"})

    assert response.status_code == 202
    assert response.get_json() == {"urls": [f"/v8/artifacts/{HASH}"]}


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "127.0.0.1:5000", "[::1]:8000", "LOCALHOST", socket.gethostname()]
)
def test_loopback_and_the_machines_own_name_are_believed(client, auth, artifact_id, host):
    for name, response in _urls(client, auth, artifact_id, host).items():
        assert response.status_code in (200, 201), (name, response.data)
        assert _url_of(name, response).startswith(f"http://{host.lower()}/"), name


def test_the_address_the_server_is_bound_to_is_believed(client, auth, artifact_id):
    # gunicorn reports the address it listens on as SERVER_NAME.
    for response in _urls(client, auth, artifact_id, "10.1.2.3:8000", SERVER_NAME="10.1.2.3").values():
        assert response.status_code in (200, 201), response.data
    # Bound to every interface, it has no name of its own to vouch for.
    for response in _urls(client, auth, artifact_id, "0.0.0.0:8000", SERVER_NAME="0.0.0.0").values():
        assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    ("allowed", "host", "believed"),
    [
        (("hoard.example.com",), "hoard.example.com", True),
        (("hoard.example.com",), "Hoard.Example.Com:8443", True),
        (("hoard.example.com:8000",), "hoard.example.com", True),
        (("hoard.example.com",), "cache.hoard.example.com", False),
        (("hoard.example.com",), "hoard.example.com.evil.example", False),
        ((".example.com",), "cache.example.com", True),
        ((".example.com",), "example.com", True),
        ((".example.com",), "badexample.com", False),
        (("a.example", "b.example"), "b.example", True),
        (("*",), "anything.example", True),
        ((), "hoard.example.com", False),
    ],
)
def test_allowed_hosts(app, client, auth, artifact_id, monkeypatch, allowed, host, believed):
    monkeypatch.setitem(app.config, "ALLOWED_HOSTS", allowed)

    response = client.post(f"/v1/artifacts/{artifact_id}/links", headers={**auth, "Host": host})

    if believed:
        assert response.status_code == 201, response.data
        assert response.get_json()["url"].startswith(f"http://{host.lower()}/dl/lnk_")
    else:
        assert_error(response, 400, "invalid_request")


def test_public_base_url_is_used_whatever_the_host(app, client, auth, artifact_id, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_BASE_URL", "https://hoard.example.com")

    for name, response in _urls(client, auth, artifact_id, "evil.example").items():
        assert response.status_code in (200, 201), (name, response.data)
        assert _url_of(name, response).startswith("https://hoard.example.com/"), name


@pytest.fixture
def proxied_app(app, tmp_path):
    """A second app on the same database, behind one trusted proxy."""
    overrides = base_overrides(tmp_path, app.config["SQLALCHEMY_DATABASE_URI"])
    overrides.update(TRUSTED_PROXY_COUNT=1, ALLOWED_HOSTS=("hoard.example.com",))
    proxied = create_app(overrides)
    yield proxied
    with proxied.app_context():
        db.engine.dispose()


def test_behind_a_proxy_the_forwarded_host_is_the_one_checked(proxied_app, auth, artifact_id):
    client = proxied_app.test_client()

    def link(forwarded_host: str):
        headers = {**auth, "Host": "127.0.0.1:8000", "X-Forwarded-Host": forwarded_host}
        return client.post(f"/v1/artifacts/{artifact_id}/links", headers=headers)

    assert link("hoard.example.com").get_json()["url"].startswith("http://hoard.example.com/dl/")
    assert_error(link("evil.example"), 400, "invalid_request")
