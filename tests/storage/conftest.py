"""Both storage backends behind one `storage` fixture: local files under
tmp_path, and S3 against a real moto server over HTTP (no mocking inside
boto3). A `probe` looks behind each backend for half-written uploads."""

import secrets
from pathlib import Path

import pytest

from app.storage.keys import partial_tag
from app.storage.local import LocalStorage
from app.storage.s3 import S3Storage

REGION = "us-east-1"
PART_SIZE = 5 * 1024 * 1024


@pytest.fixture
def bucket(make_bucket):
    """A fresh bucket per test, emptied and removed afterwards."""
    return make_bucket()


class LocalProbe:
    def __init__(self, root: Path):
        self.tmp = root / ".tmp"

    def leftovers(self) -> list[str]:
        """Temporary files of uploads in flight or left behind."""
        return sorted(p.name for p in self.tmp.iterdir()) if self.tmp.exists() else []

    def abandon(self, size: int, key: str = "staging/crashed") -> None:
        """A temporary file an upload to `key` left (or is still writing)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        (self.tmp / f"put-{partial_tag(key)}-{secrets.token_hex(4)}.part").write_bytes(b"x" * size)


class S3Probe:
    def __init__(self, client, bucket: str):
        self.client = client
        self.bucket = bucket

    def leftovers(self) -> list[str]:
        """Multipart uploads neither completed nor aborted."""
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return sorted(upload["Key"] for upload in uploads)

    def abandon(self, size: int, key: str = "staging/crashed") -> None:
        """A multipart upload with one part to `key`, not completed."""
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)
        self.client.upload_part(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload["UploadId"],
            PartNumber=1,
            Body=b"x" * size,
        )


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path):
    """(storage, probe) for each backend; moto starts only for S3."""
    if request.param == "local":
        root = tmp_path / "storage"
        return LocalStorage(str(root)), LocalProbe(root)
    bucket = request.getfixturevalue("bucket")
    storage = S3Storage(
        bucket=bucket, endpoint_url=request.getfixturevalue("moto_server"), region=REGION, part_size=PART_SIZE
    )
    return storage, S3Probe(request.getfixturevalue("s3_client"), bucket)


@pytest.fixture
def storage(backend):
    return backend[0]


@pytest.fixture
def probe(backend):
    return backend[1]


@pytest.fixture(params=["local", "s3"])
def broken_storage(request, tmp_path):
    """Each backend pointed at somewhere it cannot serve from."""
    if request.param == "local":
        blocker = tmp_path / "a-file"
        blocker.write_bytes(b"")
        # Under a regular file no directory can be made, even by root.
        return LocalStorage(str(blocker / "storage"))
    return S3Storage(
        bucket="hoard-no-such-bucket",
        endpoint_url=request.getfixturevalue("moto_server"),
        region=REGION,
        part_size=PART_SIZE,
    )
