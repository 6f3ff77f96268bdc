"""Issue 12: an artifact's bytes never change after /complete, a blob's bytes
always hash to its content_hash, and a download URL dies with its artifact.

On local storage (Hoard's own upload URL) and on S3 (moto over HTTP, where the
presigned URL cannot be revoked and only the copy at /complete protects the blob).
"""

import hashlib
import io
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.models import Blob
from app.storage import get_storage
from tests import clock
from tests.api import helpers_v1 as v1
from tests.api.helpers_v1 import assert_error, create, put_bytes, reserve

pytestmark = pytest.mark.storage

X = b"the bytes the client meant to upload\n" * 100
Y = X.upper()  # someone else's bytes, of the same length
assert len(X) == len(Y)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def complete(client, auth, artifact_id: str):
    return client.post(f"/v1/artifacts/{artifact_id}/complete", headers=auth)


def downloaded(client, auth, artifact_id: str) -> bytes:
    response = client.get(v1.download_path(client, auth, artifact_id))
    assert response.status_code == 200
    return response.data


def assert_intact(client, auth, *artifact_ids: str) -> None:
    """Each artifact downloads bytes that hash to its content_hash, and every
    blob's stored bytes hash to its recorded hash."""
    for artifact_id in artifact_ids:
        artifact = client.get(f"/v1/artifacts/{artifact_id}", headers=auth).get_json()
        assert sha(downloaded(client, auth, artifact_id)) == artifact["content_hash"], artifact_id
    db.session.rollback()
    store = get_storage()
    for blob in db.session.scalars(select(Blob)):
        with store.open_read(blob.storage_key) as fh:
            assert sha(fh.read()) == blob.content_hash, blob.storage_key


def on_s3(app) -> bool:
    return app.config["STORAGE_BACKEND"] == "s3"


class Stalling(io.RawIOBase):
    """A body that sends its first half, then waits until released."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)
        self._half = len(data) // 2
        self.stalled = threading.Event()
        self.resume = threading.Event()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:  # the test client measures the body first
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._data.seek(offset, whence)

    def tell(self) -> int:
        return self._data.tell()

    def readinto(self, buffer) -> int:
        if self._data.tell() >= self._half and not self.resume.is_set():
            self.stalled.set()
            assert self.resume.wait(timeout=30)
        chunk = self._data.read(min(len(buffer), max(self._half - self._data.tell(), 1)))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def start_stalled_put(client, ticket: dict, data: bytes):
    """A PUT through Hoard's own URL that stalls halfway; (body, thread, result)."""
    body = Stalling(data)
    result = {}

    def run():
        result["response"] = client.put(
            v1.path_of(ticket["upload_url"]),
            input_stream=body,
            headers=ticket["upload_headers"],
            content_length=len(data),
        )

    thread = threading.Thread(target=run)
    thread.start()
    assert body.stalled.wait(timeout=5), result
    return body, thread, result


# ---------------------------------------------------------------- concurrent PUTs


def test_concurrent_puts_to_one_upload_url(app, client, auth):
    ticket = reserve(client, auth, size=len(X)).get_json()
    if on_s3(app):
        # S3 takes them all (last writer wins); whichever won, the blob is
        # what /complete hashed.
        bodies = [bytes([65 + i]) * len(X) for i in range(8)]
        threads = [threading.Thread(target=put_bytes, args=(client, ticket, body)) for body in bodies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    else:
        body, first, result = start_stalled_put(client, ticket, X)
        for other in (Y, X):  # one upload at a time
            assert_error(put_bytes(client, ticket, other), 409, "upload_in_progress")
        body.resume.set()
        first.join(timeout=30)
        assert result["response"].status_code == 200, result["response"].data
        assert result["response"].get_json()["received_bytes"] == len(X)
        assert_error(put_bytes(client, ticket, Y), 409, "upload_already_completed")

    done = complete(client, auth, ticket["artifact_id"])
    assert done.status_code == 200, done.data
    if not on_s3(app):
        assert done.get_json()["content_hash"] == sha(X)
    assert_intact(client, auth, ticket["artifact_id"])


# ---------------------------------------------------------------- a PUT racing /complete


def test_a_put_landing_while_complete_copies_never_changes_the_artifact(app, client, auth, monkeypatch):
    ticket = reserve(client, auth, size=len(X)).get_json()
    assert put_bytes(client, ticket, X).status_code == 200
    store = get_storage()
    copy = type(store).copy
    racing = []

    def put_then_copy(self, source, target):
        racing.append(put_bytes(client, ticket, Y))  # S3 takes it; Hoard's own URL refuses
        return copy(self, source, target)

    monkeypatch.setattr(type(store), "copy", put_then_copy)
    done = complete(client, auth, ticket["artifact_id"])
    monkeypatch.undo()

    assert done.status_code == 200, done.data
    (race,) = racing
    assert race.status_code == (200 if on_s3(app) else 409)
    # Another PUT after /complete, of the same length.
    late = put_bytes(client, ticket, Y if done.get_json()["content_hash"] == sha(X) else X)
    if not on_s3(app):
        assert_error(late, 409, "upload_already_completed")
    assert client.get(f"/v1/artifacts/{ticket['artifact_id']}", headers=auth).get_json() == done.get_json()
    # Ordinary uploads of both bodies then share blobs that hold exactly them.
    plain_x = create(client, auth, X)
    plain_y = create(client, auth, Y)
    assert (plain_x["content_hash"], plain_y["content_hash"]) == (sha(X), sha(Y))
    assert downloaded(client, auth, plain_x["artifact_id"]) == X
    assert downloaded(client, auth, plain_y["artifact_id"]) == Y
    assert_intact(client, auth, ticket["artifact_id"], plain_x["artifact_id"], plain_y["artifact_id"])


@pytest.mark.local_storage  # Hoard's own URL: its PUT outlives the lease
def test_a_stalled_put_that_ends_after_complete_is_refused_and_never_read(app, client, auth):
    ticket = reserve(client, auth, size=len(X)).get_json()
    body, stalled, result = start_stalled_put(client, ticket, Y)
    # The stalled PUT stops beating; another takes over and completes.
    clock.advance(timedelta_of_dead_lease(app))
    assert put_bytes(client, ticket, X).status_code == 200
    done = complete(client, auth, ticket["artifact_id"])
    assert done.status_code == 200 and done.get_json()["content_hash"] == sha(X)

    body.resume.set()
    stalled.join(timeout=30)

    assert_error(result["response"], 409, "upload_already_completed")
    assert downloaded(client, auth, ticket["artifact_id"]) == X
    plain_x = create(client, auth, X)
    assert downloaded(client, auth, plain_x["artifact_id"]) == X
    assert_intact(client, auth, ticket["artifact_id"], plain_x["artifact_id"])


def timedelta_of_dead_lease(app):
    from datetime import timedelta

    from app.services import leases

    return timedelta(seconds=app.config["UPLOAD_HEARTBEAT_SECONDS"] * leases.MISSED_BEATS + 1)


def test_a_put_after_complete_never_reaches_the_blob_or_later_uploads(app, client, auth):
    """The S3 attack of the issue: same length and type, after /complete."""
    ticket = reserve(client, auth, size=len(X)).get_json()
    assert put_bytes(client, ticket, X).status_code == 200
    assert complete(client, auth, ticket["artifact_id"]).get_json()["content_hash"] == sha(X)

    late = put_bytes(client, ticket, Y)
    assert late.status_code == (200 if on_s3(app) else 409)

    assert downloaded(client, auth, ticket["artifact_id"]) == X
    again = create(client, auth, X)  # dedup attaches to the presigned blob
    assert downloaded(client, auth, again["artifact_id"]) == X
    assert_intact(client, auth, ticket["artifact_id"], again["artifact_id"])


# ---------------------------------------------------------------- download URLs


def test_a_redirect_mode_download_url_dies_with_its_artifact(app, client, auth, monkeypatch):
    if not on_s3(app):
        pytest.skip("presigned redirects need an object store (the postgresql-s3 variant)")
    monkeypatch.setitem(app.config, "DOWNLOAD_MODE", "redirect")
    artifact_id = create(client, auth, X)["artifact_id"]
    url = client.get(f"/v1/artifacts/{artifact_id}/download-url", headers=auth).get_json()["download_url"]
    assert "/v1/blobs/" in url  # Hoard's own, which DELETE can revoke

    redirected = client.get(v1.path_of(url))
    assert redirected.status_code == 302
    target = redirected.headers["Location"]
    assert parse_qs(urlsplit(target).query)["X-Amz-Expires"] == [
        str(app.config["PRESIGNED_REDIRECT_SECONDS"])
    ]
    assert app.config["PRESIGNED_REDIRECT_SECONDS"] == 60
    assert requests.get(target, timeout=10).content == X

    assert client.delete(f"/v1/artifacts/{artifact_id}", headers=auth).status_code == 200
    assert_error(client.get(v1.path_of(url)), 410, "artifact_already_deleted")
