"""What only S3 has: parts, signed headers, path-style URLs."""

import io
from urllib.parse import parse_qs, urlparse

import pytest

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
