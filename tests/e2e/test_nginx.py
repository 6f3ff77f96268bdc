"""Hoard behind the real nginx, configured by deploy/nginx.conf: streamed
uploads, X-Accel-Redirect downloads, JSON errors, trusted forwarded headers."""

import hashlib
import http.client
import json
import os
import socket

import pytest
import requests

from tests.e2e.batch_urls import assert_downloads, assert_gone, batch_download_urls
from tests.live_server import HoardServer
from tests.nginx_proxy import NginxProxy

MAX_CACHE_BYTES = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def proxied(new_postgres_database, tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("nginx-hoard")
    server = HoardServer(
        var_dir=var_dir,
        database_url=new_postgres_database(),
        env_overrides={
            "DOWNLOAD_MODE": "x-accel",
            "TRUSTED_PROXY_COUNT": "1",
            "CACHE_MAX_ARTIFACT_BYTES": str(MAX_CACHE_BYTES),
        },
    )
    with server, NginxProxy(server.port, var_dir / "storage", tmp_path_factory.mktemp("nginx")) as proxy:
        tenant = server.create_tenant("proxied")
        yield proxy, tenant


def _auth(tenant):
    return {"Authorization": f"Bearer {tenant.key}"}


def test_cache_put_and_x_accel_get_through_nginx(proxied):
    proxy, tenant = proxied
    body = os.urandom(20 * 1024 * 1024)
    put = requests.put(
        f"{proxy.url}/v8/artifacts/feedface01",
        data=body,
        headers={
            **_auth(tenant),
            "x-artifact-duration": "77",
            "x-artifact-tag": "sig",
            "X-Forwarded-Host": "evil.example",
        },
    )
    assert put.status_code == 202, put.text
    # nginx overwrites the forwarded host, so Hoard's URLs name the proxy.
    assert put.json()["urls"] == [f"{proxy.url}/v8/artifacts/feedface01"]

    got = requests.get(f"{proxy.url}/v8/artifacts/feedface01", headers=_auth(tenant))
    assert got.status_code == 200
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(body).digest()
    assert got.headers["Content-Length"] == str(len(body))
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert got.headers["x-artifact-duration"] == "77"
    assert got.headers["x-artifact-tag"] == "sig"
    assert "Content-Encoding" not in got.headers
    assert "X-Accel-Redirect" not in got.headers
    # nginx serves the file itself: Hoard's security headers must survive it.
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Security-Policy"] == "sandbox"
    assert got.headers["Cache-Control"] == "private, no-store"


def test_chunked_upload_streams_through_nginx(proxied):
    proxy, tenant = proxied
    chunks = [os.urandom(1024 * 1024) for _ in range(5)]
    put = requests.put(f"{proxy.url}/v8/artifacts/chunked01", data=iter(chunks), headers=_auth(tenant))
    assert put.status_code == 202, put.text
    got = requests.get(f"{proxy.url}/v8/artifacts/chunked01", headers=_auth(tenant))
    assert got.content == b"".join(chunks)


def test_storage_location_is_internal_only(proxied):
    proxy, _ = proxied
    assert requests.get(f"{proxy.url}/_hoard_storage/anything").status_code == 404


def test_oversized_body_gets_hoards_json_413(proxied):
    proxy, tenant = proxied
    response = _announce_too_large(proxy, tenant)
    assert response["status"] == 413
    assert response["json"]["code"] == "file_too_large"


def _announce_too_large(proxy, tenant) -> dict:
    """Announce a body over the limit, send none of it, and read the answer."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    connection.putrequest("PUT", "/v8/artifacts/toolarge01")
    connection.putheader("Authorization", f"Bearer {tenant.key}")
    connection.putheader("Content-Length", str(MAX_CACHE_BYTES + 1))
    connection.endheaders()
    reply = connection.getresponse()
    result = {"status": reply.status, "json": json.loads(reply.read())}
    connection.close()
    return result


def test_v1_download_url_and_link_through_nginx(proxied):
    proxy, tenant = proxied
    upload = requests.post(
        f"{proxy.url}/v1/artifacts",
        headers=_auth(tenant),
        files={"file": ('résumé "final".pdf', b"%PDF-1.4 hello", "application/pdf")},
    )
    assert upload.status_code == 201, upload.text
    artifact_id = upload.json()["artifact_id"]
    ticket = requests.get(
        f"{proxy.url}/v1/artifacts/{artifact_id}/download-url", headers=_auth(tenant)
    ).json()
    assert ticket["download_url"].startswith(proxy.url)
    blob = requests.get(ticket["download_url"])
    assert blob.status_code == 200
    assert blob.content == b"%PDF-1.4 hello"
    assert blob.headers["Content-Type"] == "application/pdf"
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9" in blob.headers["Content-Disposition"]
    partial = requests.get(ticket["download_url"], headers={"Range": "bytes=0-3"})
    assert partial.status_code == 206
    assert partial.content == b"%PDF"

    link = requests.post(f"{proxy.url}/v1/artifacts/{artifact_id}/links", headers=_auth(tenant)).json()
    assert link["url"].startswith(proxy.url)
    public = requests.get(link["url"])
    assert public.status_code == 200
    assert public.content == b"%PDF-1.4 hello"
    for download in (blob, partial, public):
        assert download.headers["Content-Disposition"].startswith("attachment;")
        assert download.headers["X-Content-Type-Options"] == "nosniff"
        assert download.headers["Content-Security-Policy"] == "sandbox"
        assert "Cache-Control" not in download.headers


def test_v1_batch_download_urls_through_nginx(proxied):
    """The batch's URLs name the proxy, and nginx sends the files itself
    (X-Accel-Redirect) exactly as for download-url's."""
    proxy, tenant = proxied
    outputs = {"plan é.pdf": b"%PDF-1.4 plan", "notes.pdf": b"%PDF-1.4 notes"}
    ids = []
    for name, data in outputs.items():
        upload = requests.post(
            f"{proxy.url}/v1/artifacts",
            headers=_auth(tenant),
            files={"file": (name, data, "application/pdf")},
        )
        assert upload.status_code == 201, upload.text
        ids.append(upload.json()["artifact_id"])

    entries = batch_download_urls(proxy.url, tenant.key, ids)

    for entry, (name, data) in zip(entries, outputs.items(), strict=True):
        assert entry["download_url"].startswith(f"{proxy.url}/v1/blobs/")
        assert_downloads(entry["download_url"], data, content_type="application/pdf", filename=name)
        blob = requests.get(entry["download_url"])
        assert "X-Accel-Redirect" not in blob.headers
        assert blob.headers["Content-Security-Policy"] == "sandbox"
    assert requests.delete(f"{proxy.url}/v1/artifacts/{ids[0]}", headers=_auth(tenant)).status_code == 200
    assert_gone(entries[0]["download_url"])


def test_one_address_gets_a_json_429_past_its_requests_in_progress(proxied):
    # deploy/nginx.conf: limit_conn 20 per client address.
    proxy, tenant = proxied
    connections = []
    try:
        for _ in range(24):
            sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
            connections.append(sock)
            sock.sendall(
                f"PUT /v8/artifacts/slow{len(connections):02d} HTTP/1.1\r\nHost: hoard\r\n"
                f"Authorization: Bearer {tenant.key}\r\nContent-Length: 1000000\r\n\r\nfirst bytes".encode()
            )
        # The 20 uploads in progress get no answer; the 4 after them do.
        for sock in connections[20:]:
            reply = http.client.HTTPResponse(sock)
            reply.begin()
            assert reply.status == 429
            assert reply.getheader("Content-Type") == "application/json"
            assert json.loads(reply.read())["code"] == "rate_limited"
    finally:
        for sock in connections:
            sock.close()
