"""POST /v1/artifacts/batch/download-urls (Artifacta V1.1): each entry is
what download-url answers for its id, all of them read with one SELECT; the
URLs work exactly like download-url's in every DOWNLOAD_MODE; a bad batch is
a 400 and a bad id never fails the others."""

from datetime import timedelta

import pytest
import requests

from app.services import usage
from app.services.artifacts import uploads
from tests import clock
from tests.api.helpers_v1 import (
    MISSING_ID,
    assert_error,
    create,
    download_path,
    path_of,
    put_bytes,
    reserve,
)
from tests.api.test_transactions import statements

# Every test here hands out URLs to bytes: it runs on S3 storage too.
pytestmark = pytest.mark.storage

BATCH = "/v1/artifacts/batch/download-urls"
DATA = b"0123456789abcdef"
TICKET_FIELDS = {"download_url", "expires_in", "filename", "content_type", "size_bytes"}


def batch(client, auth, ids: list):
    return client.post(BATCH, json={"artifact_ids": ids}, headers=auth)


def entries(client, auth, ids: list) -> list[dict]:
    response = batch(client, auth, ids)
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"download_urls"}
    assert [entry["artifact_id"] for entry in body["download_urls"]] == ids
    return body["download_urls"]


def single(client, auth, artifact_id: str):
    return client.get(f"/v1/artifacts/{artifact_id}/download-url", headers=auth)


def without_url(body: dict) -> dict:
    # Two URLs for one artifact never share a token; everything else matches.
    return {name: value for name, value in body.items() if name != "download_url"}


# ---------------------------------------------------------------- answers


def test_live_artifacts_get_urls_in_the_order_asked(client, auth):
    made = [
        create(client, auth, DATA, filename="a.txt"),
        create(client, auth, b"bee", filename="b.bin", content_type="application/x-thing"),
        create(client, auth, b"", filename="empty.txt"),
    ]
    ids = [made[1]["artifact_id"], made[2]["artifact_id"], made[0]["artifact_id"]]

    got = entries(client, auth, ids)

    for entry, artifact_id in zip(got, ids, strict=True):
        assert set(entry) == {"artifact_id"} | TICKET_FIELDS
        assert entry["download_url"].startswith("http://localhost/v1/blobs/")
        assert entry["expires_in"] == 3600
        alone = single(client, auth, artifact_id).get_json()
        assert without_url(entry) == {"artifact_id": artifact_id, **without_url(alone)}
    assert [client.get(path_of(entry["download_url"])).data for entry in got] == [b"bee", b"", DATA]


def test_each_entry_is_what_download_url_answers_for_its_id(client, auth, other):
    _, theirs = other
    live = create(client, auth, DATA)["artifact_id"]
    theirs_id = create(client, theirs, DATA)["artifact_id"]
    deleted = create(client, auth)["artifact_id"]
    assert client.delete(f"/v1/artifacts/{deleted}", headers=auth).status_code == 200
    expired = create(client, auth, ttl="1h")["artifact_id"]
    pending = reserve(client, auth, size=3).get_json()["artifact_id"]
    ticket = reserve(client, auth, size=3).get_json()
    put_bytes(client, ticket, b"abc")  # bytes arrived, never completed
    clock.advance(timedelta(hours=1, seconds=1))
    expected = {
        live: None,
        MISSING_ID: "artifact_not_found",
        theirs_id: "artifact_not_found",
        deleted: "artifact_already_deleted",
        expired: "artifact_expired",
        pending: "invalid_request",  # download-url alone: upload_not_found
        ticket["artifact_id"]: "invalid_request",
        "nope": "artifact_not_found",
        "ART_0000000000000000": "artifact_not_found",
    }
    ids = list(expected)

    got = entries(client, auth, ids)

    for entry, artifact_id in zip(got, ids, strict=True):
        alone = single(client, auth, artifact_id)
        if expected[artifact_id] is None:
            assert alone.status_code == 200
            assert without_url(entry) == {"artifact_id": artifact_id, **without_url(alone.get_json())}
        else:
            if expected[artifact_id] == "invalid_request":
                # The batch contract's one difference from download-url: pending is invalid_request.
                assert_error(alone, 400, "upload_not_found")
                assert entry["artifact_id"] == artifact_id
                assert (entry["error"]["code"], entry["error"]["status"]) == ("invalid_request", 400)
                assert "pending" in entry["error"]["message"]
                continue
            status = {"artifact_not_found": 404}.get(expected[artifact_id], 410)
            assert_error(alone, status, expected[artifact_id])
            assert entry == {"artifact_id": artifact_id, **alone.get_json()}
    # Another tenant's artifact is a missing one, to the letter.
    assert got[2]["error"] == got[1]["error"]


@pytest.mark.parametrize(
    "artifact_id",
    ["", " ", "art_short", "art_0000000000000000\n", "../etc", "é" * 300, "art_000000000000000\x00"],
)
def test_an_id_no_artifact_could_have_is_artifact_not_found(client, auth, artifact_id):
    live = create(client, auth)["artifact_id"]
    got = entries(client, auth, [artifact_id, live])
    assert got[0] == {"artifact_id": artifact_id, **single(client, auth, MISSING_ID).get_json()}
    assert set(got[1]) == {"artifact_id"} | TICKET_FIELDS


def test_twenty_ids_is_the_limit(client, auth):
    live = [create(client, auth, bytes([i]) * (i + 1))["artifact_id"] for i in range(3)]
    ids = live + [uploads.new_artifact_id() for _ in range(17)]

    got = entries(client, auth, ids)

    assert [entry["size_bytes"] for entry in got[:3]] == [1, 2, 3]
    assert {entry["error"]["code"] for entry in got[3:]} == {"artifact_not_found"}
    assert_error(batch(client, auth, [*ids, uploads.new_artifact_id()]), 400, "invalid_request")


# ---------------------------------------------------------------- bad batches


@pytest.mark.parametrize(
    "body",
    [
        {"artifact_ids": []},
        {"artifact_ids": [f"art_{i:016d}" for i in range(21)]},
        {"artifact_ids": [MISSING_ID, MISSING_ID]},
        {"artifact_ids": ["nope", "art_1111111111111111", "nope"]},
        {"artifact_ids": [5]},
        {"artifact_ids": [MISSING_ID, None]},
        {"artifact_ids": [MISSING_ID, True]},
        {"artifact_ids": [[MISSING_ID]]},
        {"artifact_ids": [{"artifact_id": MISSING_ID}]},
        {"artifact_ids": [1.5]},
        {"artifact_ids": MISSING_ID},
        {"artifact_ids": {MISSING_ID: True}},
        {"artifact_ids": None},
        {"ids": [MISSING_ID]},
        {},
        [MISSING_ID],
        MISSING_ID,
        None,
    ],
)
def test_a_bad_batch_is_400(client, auth, body):
    assert_error(client.post(BATCH, json=body, headers=auth), 400, "invalid_request")


def test_a_bad_batch_is_400_even_when_its_ids_are_live(client, auth):
    live = create(client, auth)["artifact_id"]
    for ids in ([live, live], [live, 7], [live] + [uploads.new_artifact_id() for _ in range(20)]):
        assert_error(batch(client, auth, ids), 400, "invalid_request")


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"", None),
        (b"{", "application/json"),
        (b'{"artifact_ids": ["a"', "application/json"),
        (b"\xff", None),
    ],
)
def test_a_body_that_is_not_json_is_400(client, auth, data, content_type):
    headers = {**auth, **({"Content-Type": content_type} if content_type else {})}
    assert_error(client.post(BATCH, data=data, headers=headers), 400, "invalid_request")


def test_a_body_over_a_mebibyte_is_413(client, auth):
    body = b'{"artifact_ids": ["' + b"a" * (1024 * 1024) + b'"]}'
    response = client.post(BATCH, data=body, headers={**auth, "Content-Type": "application/json"})
    assert_error(response, 413, "file_too_large")


# ---------------------------------------------------------------- the route among /v1/artifacts/<id>


def test_batch_is_never_taken_for_an_artifact_id(client, auth):
    for method, path in (
        ("GET", "/v1/artifacts/batch"),
        ("DELETE", "/v1/artifacts/batch"),
        ("GET", "/v1/artifacts/batch/download-url"),
        ("POST", "/v1/artifacts/batch/complete"),
        ("POST", "/v1/artifacts/batch/links"),
    ):
        assert_error(client.open(path, method=method, headers=auth), 404, "artifact_not_found")
    wrong_method = client.get(BATCH, headers=auth)
    assert_error(wrong_method, 405, "method_not_allowed")
    assert "POST" in wrong_method.headers["Allow"]


# ---------------------------------------------------------------- one SELECT


def _artifact_statements(seen) -> list[str]:
    return [text for text in seen.texts if " artifacts" in text or "blobs" in text]


def test_the_whole_batch_is_one_select_scoped_to_the_tenant(app, client, auth, monkeypatch):
    live = [create(client, auth, bytes([i]) * 4)["artifact_id"] for i in range(4)]
    deleted = create(client, auth, b"gone")["artifact_id"]
    client.delete(f"/v1/artifacts/{deleted}", headers=auth)
    pending = reserve(client, auth).get_json()["artifact_id"]
    ids = [*live, deleted, pending, "nope"] + [uploads.new_artifact_id() for _ in range(13)]
    assert len(ids) == 20
    # No usage flush inside the measured requests: it is time-based, not theirs.
    monkeypatch.setattr(usage.pending_counts(app), "last_flush", float("inf"))

    with statements(app) as one:
        assert len(entries(client, auth, ids[:1])) == 1
    with statements(app) as twenty:
        got = entries(client, auth, ids)

    assert sum("error" not in entry for entry in got) == 4
    for seen in (one, twenty):
        reads = _artifact_statements(seen)
        assert len(reads) == 1, reads
        assert reads[0].startswith("SELECT ")
        assert "FROM artifacts LEFT OUTER JOIN blobs" in reads[0]
        assert "artifacts.tenant_id =" in reads[0]
    # Asking for twenty costs the database what asking for one does.
    assert len(twenty.texts) == len(one.texts), (one.texts, twenty.texts)


def test_a_batch_of_ids_no_artifact_could_have_reads_no_artifact(app, client, auth):
    with statements(app) as seen:
        got = entries(client, auth, ["nope", "", "art_short"])
    assert {entry["error"]["code"] for entry in got} == {"artifact_not_found"}
    assert _artifact_statements(seen) == []


# ---------------------------------------------------------------- the URLs, in every DOWNLOAD_MODE


def _answer(client, path: str, method: str, headers: dict) -> dict:
    """What a plain, unauthenticated client gets from a URL: a presigned
    redirect is followed (to the object store) and described by where it
    goes and what that answers."""
    response = client.open(path, method=method, headers=headers)
    answer = {
        "status": response.status_code,
        "body": response.data,
        **{
            name: response.headers.get(name)
            for name in (
                "Content-Type",
                "Content-Length",
                "Content-Disposition",
                "Content-Range",
                "Accept-Ranges",
                "X-Accel-Redirect",
                "X-Content-Type-Options",
                "Content-Security-Policy",
                "Cache-Control",
            )
        },
    }
    if response.status_code == 302:
        # The presigned URL carries its own signature and date: compare what it names and serves.
        location = response.headers["Location"]
        target = requests.get(location, headers=headers, timeout=10)
        answer["Location"] = location.split("?", 1)[0]
        answer["target"] = (
            target.status_code,
            target.content,
            target.headers.get("Content-Type"),
            target.headers.get("Content-Disposition"),
            target.headers.get("Content-Range"),
        )
    return answer


REQUESTS = [
    ("GET", {}),
    ("HEAD", {}),
    ("GET", {"Range": "bytes=2-5"}),
    ("GET", {"Range": "bytes=-3"}),
    ("GET", {"Range": "bytes=99-"}),
]


@pytest.mark.parametrize("mode", ["sendfile", "x-accel", "redirect"])
def test_the_urls_work_exactly_like_download_urls(app, client, auth, monkeypatch, mode):
    monkeypatch.setitem(app.config, "DOWNLOAD_MODE", mode)
    on_s3 = app.config["STORAGE_BACKEND"] == "s3"
    made = create(client, auth, DATA, filename='отчёт "final"; v2.bin', content_type="application/x-thing")
    kept = create(client, auth, b"kept", filename="kept.txt")
    ids = [made["artifact_id"], kept["artifact_id"]]
    from_batch = [path_of(entry["download_url"]) for entry in entries(client, auth, ids)]
    from_single = [download_path(client, auth, artifact_id) for artifact_id in ids]

    for method, headers in REQUESTS:
        batched = _answer(client, from_batch[0], method, headers)
        assert batched == _answer(client, from_single[0], method, headers), (method, headers)

    # ...and what they answer is the download, however this mode sends it.
    got = _answer(client, from_batch[0], "GET", {})
    if mode == "redirect" and on_s3:
        assert (got["status"], got["target"][:3]) == (302, (200, DATA, "application/x-thing"))
        assert got["target"][3].startswith("attachment;")
    elif mode == "x-accel" and not on_s3:
        assert (got["status"], got["body"]) == (200, b"")
        assert got["Content-Disposition"].startswith("attachment;")
        assert got["X-Accel-Redirect"].startswith(app.config["X_ACCEL_PREFIX"])
    else:
        assert (got["status"], got["body"], got["Content-Length"]) == (200, DATA, "16")
        assert got["Content-Type"] == "application/x-thing"
        assert got["Content-Disposition"].startswith("attachment;")
        ranged = _answer(client, from_batch[0], "GET", {"Range": "bytes=2-5"})
        assert (ranged["status"], ranged["body"], ranged["Content-Range"]) == (206, DATA[2:6], "bytes 2-5/16")
    head = _answer(client, from_batch[0], "HEAD", {})
    assert (head["status"], head["body"], head["Content-Length"]) == (200, b"", "16")

    # Deleting the artifact stops both kinds of URL at once, and only its own.
    assert client.delete(f"/v1/artifacts/{made['artifact_id']}", headers=auth).status_code == 200
    for path in (from_batch[0], from_single[0]):
        assert_error(client.get(path), 410, "artifact_already_deleted")
        assert_error(client.head(path), 410, "artifact_already_deleted")
    kept_answer = _answer(client, from_batch[1], "GET", {})
    assert kept_answer == _answer(client, from_single[1], "GET", {})
    assert kept_answer["status"] in (200, 302)


def test_the_urls_expire_like_download_urls(client, auth):
    made = create(client, auth, DATA)
    short = create(client, auth, DATA, ttl="10m")
    paths = [
        path_of(entry["download_url"])
        for entry in entries(client, auth, [made["artifact_id"], short["artifact_id"]])
    ]

    clock.advance(timedelta(minutes=11))
    assert client.get(paths[0]).data == DATA
    assert_error(client.get(paths[1]), 410, "artifact_expired")
    clock.advance(timedelta(seconds=3600 - 11 * 60 + 1))
    assert_error(client.get(paths[0]), 410, "url_expired")
    assert_error(client.head(paths[0]), 410, "url_expired")
