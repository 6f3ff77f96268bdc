"""POST /v1/artifacts/batch/download-urls against a live Hoard, and its URLs
used the way anyone they are handed to would: plain HTTP, no key. The
official SDK 0.3.0 has no call for the route, so none of this goes through it."""

from urllib.parse import quote

import requests

BATCH = "/v1/artifacts/batch/download-urls"


def batch_download_urls(base_url: str, key: str, ids: list[str]) -> list[dict]:
    """The batch's entries, checked to answer every id in order."""
    response = requests.post(
        base_url + BATCH, json={"artifact_ids": ids}, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    entries = response.json()["download_urls"]
    assert [entry["artifact_id"] for entry in entries] == ids
    return entries


def assert_downloads(url: str, data: bytes, *, content_type: str, filename: str) -> None:
    """The URL serves `data` to a plain GET (following a presigned redirect),
    with its type and disposition, and answers HEAD and Range."""
    got = requests.get(url, timeout=30)
    assert (got.status_code, got.content) == (200, data), got.text[:300]
    assert got.headers["Content-Type"].startswith(content_type)
    assert got.headers["Content-Disposition"].startswith("attachment;")
    assert f"filename*=UTF-8''{quote(filename, safe='')}" in got.headers["Content-Disposition"]
    head = requests.head(url, timeout=10)
    assert (head.status_code, head.content, head.headers["Content-Length"]) == (200, b"", str(len(data)))
    part = requests.get(url, headers={"Range": "bytes=1-3"}, timeout=10)
    assert (part.status_code, part.content) == (206, data[1:4])


def assert_gone(url: str) -> None:
    """Hoard itself answers 410 once the artifact is deleted: no redirect."""
    for method in ("GET", "HEAD"):
        response = requests.request(method, url, allow_redirects=False, timeout=10)
        assert response.status_code == 410, (method, response.status_code)
    assert requests.get(url, timeout=10).json()["error"]["code"] == "artifact_already_deleted"
