"""The official Artifacta SDK against Hoard on S3 storage (a moto server over
HTTP): presigned uploads go straight to the object store, downloads are
streamed through Hoard or handed out as presigned URLs."""

import hashlib
import os
import re
import time

import httpx
import pytest
import requests
from artifacta.errors import ArtifactDeletedError, SessionSealedError
from artifacta.sdk import Client

from tests.e2e.batch_urls import assert_downloads, assert_gone, batch_download_urls
from tests.live_server import HoardServer

LARGE = 100 * 1024 * 1024


@pytest.fixture(scope="module", params=["sendfile", "redirect"])
def s3_hoard(request, s3_server_env, s3_client, new_postgres_database, tmp_path_factory, artifacta_home):
    env = s3_server_env("hoard-sdk", S3_PART_SIZE=str(8 * 1024 * 1024), DOWNLOAD_MODE=request.param)
    bucket = env["S3_BUCKET"]
    var_dir = tmp_path_factory.mktemp(f"sdk-s3-{request.param}")
    with HoardServer(var_dir=var_dir, database_url=new_postgres_database(), env_overrides=env) as server:
        tenant = server.create_tenant(f"s3-{request.param}")
        client = Client(base_url=server.url, api_key=tenant.key)
        yield request.param, server, client, s3_client, bucket, tenant.key


def _logged_statuses(server, request_line: str) -> list[str]:
    """Statuses gunicorn logged for a request; a worker writes the line just
    after the response, so wait briefly for it."""
    pattern = re.compile(rf'"{re.escape(request_line)} HTTP/1\.1" (\d{{3}})')
    deadline = time.monotonic() + 5
    while not (found := pattern.findall(server.log_path.read_text())) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_presigned_push_of_100_mb_goes_straight_to_s3(s3_hoard):
    mode, server, client, s3, bucket, _ = s3_hoard
    data = os.urandom(LARGE)
    artifact = client.push(content=data, filename="large.bin", presigned=True)

    assert artifact._data["status"] == "active"
    assert artifact.size_bytes == LARGE
    assert artifact._data["content_hash"] == _sha(data)
    # The bytes went to the S3 endpoint: Hoard never saw an upload PUT...
    assert "/v1/uploads/" not in server.log_path.read_text()
    # ...and the object in the bucket is those bytes.
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    sizes = {item["Key"]: item["Size"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert LARGE in sizes.values(), keys
    assert _sha(client.pull_bytes(artifact.id)) == _sha(data)


def test_push_pull_link_and_delete(s3_hoard, tmp_path):
    mode, server, client, s3, bucket, _ = s3_hoard
    source = tmp_path / "report é.html"
    source.write_bytes(b"<h1>report</h1>" * 10_000)
    artifact = client.push(str(source), session_id=f"ses-{mode}", metadata={"kind": "report"})
    assert artifact._data["content_hash"] == _sha(source.read_bytes())

    out = tmp_path / "out"
    out.mkdir()
    client.pull(artifact.id, output=str(out) + "/")
    assert (out / "report é.html").read_bytes() == source.read_bytes()

    ticket = client._request("GET", f"/v1/artifacts/{artifact.id}/download-url").json()
    # Always Hoard's own URL, which DELETE revokes; in redirect mode its use
    # is answered with the store's short presigned URL, with the right type
    # and disposition.
    assert "/v1/blobs/" in ticket["download_url"]
    fetched = httpx.get(ticket["download_url"], follow_redirects=True)
    assert fetched.status_code == 200
    assert fetched.content == source.read_bytes()
    assert fetched.headers["content-type"].startswith("text/html")
    assert "filename*=UTF-8''report%20%C3%A9.html" in fetched.headers["content-disposition"]

    link = client.create_link(artifact.id)
    public = httpx.get(link.url, follow_redirects=True)
    assert public.status_code == 200
    assert public.content == source.read_bytes()
    # The access log keeps the link's kind, never its id (app/access_log.py).
    assert _logged_statuses(server, "GET /dl/lnk_[redacted]") == (["302"] if mode == "redirect" else ["200"])

    client.seal_session(f"ses-{mode}")
    with pytest.raises(SessionSealedError):
        client.push(content=b"late", filename="late.txt", session_id=f"ses-{mode}", presigned=True)

    client.delete(artifact.id)
    with pytest.raises(ArtifactDeletedError):
        client.get(artifact.id)
    assert httpx.get(link.url, follow_redirects=True).status_code == 410


def test_batch_download_urls_work_with_a_plain_get(s3_hoard):
    """The V1.1 batch's URLs, on S3 in each DOWNLOAD_MODE: Hoard's own, which
    stream the bytes or redirect to the store, and stop at DELETE."""
    mode, server, client, _, _, key = s3_hoard
    outputs = {f"{mode}-{i} é.json": os.urandom(2000 + i) for i in range(2)}
    ids = [
        client.push(content=data, filename=name, content_type="application/json").id
        for name, data in outputs.items()
    ]

    entries = batch_download_urls(server.url, key, [*ids, "art_0000000000000000"])

    assert entries[2]["error"]["code"] == "artifact_not_found"
    for entry, (name, data) in zip(entries, outputs.items(), strict=False):
        assert "/v1/blobs/" in entry["download_url"]
        first = requests.get(entry["download_url"], allow_redirects=False, timeout=10)
        assert first.status_code == (302 if mode == "redirect" else 200)
        assert_downloads(entry["download_url"], data, content_type="application/json", filename=name)
    client.delete(ids[0])
    assert_gone(entries[0]["download_url"])
    assert requests.get(entries[1]["download_url"], timeout=10).content == outputs[list(outputs)[1]]
