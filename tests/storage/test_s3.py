"""What only S3 has: parts, signed headers, path-style URLs."""

import io
import socket
import threading
from urllib.parse import parse_qs, urlparse

import pytest

from app.storage import StorageError
from app.storage.s3 import S3Storage
from tests.storage.conftest import PART_SIZE, REGION

MiB = 1024 * 1024


@pytest.fixture
def s3(bucket, moto_server):
    return S3Storage(bucket=bucket, endpoint_url=moto_server, region=REGION, part_size=PART_SIZE)


@pytest.mark.parametrize(
    ("size", "parts"), [(PART_SIZE, None), (PART_SIZE + 1, 2), (12 * MiB, 3)], ids=["single", "two", "three"]
)
def test_multipart_only_past_one_part(s3, s3_client, bucket, size, parts):
    s3.put_stream("k/obj", io.BytesIO(b"x" * size), max_size=size)
    etag = s3_client.head_object(Bucket=bucket, Key="k/obj")["ETag"].strip('"')
    # A multipart object's ETag ends in "-<number of parts>".
    assert etag.partition("-")[2] == ("" if parts is None else str(parts))


def test_part_size_within_s3_limits():
    with pytest.raises(ValueError):
        S3Storage(bucket="b", endpoint_url=None, region=REGION, part_size=MiB)


def test_presigned_urls_are_path_style_and_sign_length_and_type(s3, moto_server, bucket):
    presigned = s3.presign_put("uploads/t1/a1", expires_in=60, size=123, content_type="application/gzip")
    url = urlparse(presigned.url)
    assert presigned.url.startswith(f"{moto_server}/{bucket}/uploads/t1/a1?")
    query = parse_qs(url.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["60"]
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]


def test_a_store_that_stops_answering_is_an_error_not_a_held_thread(monkeypatch):
    """The kernel completes the connection into the listening socket's
    backlog and nothing ever answers: each request gives up after its read
    timeout and its attempts, and the caller gets a StorageError."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        store = S3Storage(
            bucket="b",
            endpoint_url=f"http://127.0.0.1:{silent.getsockname()[1]}",
            region=REGION,
            part_size=PART_SIZE,
            connect_timeout=0.2,
            read_timeout=0.2,
            max_attempts=2,
        )
        assert store.client.meta.config.read_timeout == 0.2
        assert store.client.meta.config.retries["total_max_attempts"] == 2
        outcome = {}

        def check():
            try:
                store.check()
            except StorageError as error:
                outcome["error"] = error

        checking = threading.Thread(target=check, daemon=True)
        checking.start()
        checking.join(timeout=120)  # a guard against a hang, not a measurement
        assert not checking.is_alive(), "the check is still waiting on the silent store"
    assert "not reachable" in str(outcome["error"])


def test_the_apps_s3_settings_reach_the_client(app, monkeypatch):
    """config.py's S3 timeouts and attempts are the ones the client uses."""
    from app.storage import _build  # noqa: PLC0415 - the factory itself is what is tested

    settings = {
        **app.config,
        "STORAGE_BACKEND": "s3",
        "S3_CONNECT_TIMEOUT_SECONDS": 1.5,
        "S3_READ_TIMEOUT_SECONDS": 7.0,
        "S3_MAX_ATTEMPTS": 4,
    }
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    client_config = _build(settings).client.meta.config
    assert (client_config.connect_timeout, client_config.read_timeout) == (1.5, 7.0)
    assert client_config.retries["total_max_attempts"] == 4
