"""What a test's app has in storage, on either backend, through the same
interface the app uses: published objects, and uploads still in flight."""

from dataclasses import dataclass

import boto3
from botocore.config import Config

from app.storage import get_storage
from app.storage.local import LocalStorage


@dataclass(frozen=True, order=True)
class StoredView:
    key: str
    size: int

    def read_bytes(self) -> bytes:
        with get_storage().open_read(self.key) as stream:
            return stream.read()

    def unlink(self) -> None:
        get_storage().delete(self.key)


def stored_files(app) -> list[StoredView]:
    """Published objects, sorted by key (temporary files are not objects)."""
    with app.app_context():
        return sorted(StoredView(key, size) for key, size, _ in get_storage().iter_keys(""))


def upload_leftovers(app) -> list[str]:
    """Temporary files (local) or open multipart uploads (S3)."""
    with app.app_context():
        storage = get_storage()
        if isinstance(storage, LocalStorage):
            tmp = storage.root / ".tmp"
            return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []
        client = boto3.client(
            "s3",
            endpoint_url=app.config["S3_ENDPOINT_URL"],
            region_name=app.config["S3_REGION"],
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        uploads = client.list_multipart_uploads(Bucket=app.config["S3_BUCKET"]).get("Uploads", [])
        return sorted(upload["Key"] for upload in uploads)
