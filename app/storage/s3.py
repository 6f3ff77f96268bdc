"""S3 backend: objects in one bucket, reached through one boto3 client."""

import io
import logging
import mmap
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .base import (
    CHUNK_SIZE,
    ObjectNotFound,
    PresignedPut,
    Storage,
    StorageError,
    StoredObject,
    content_disposition,
)
from .streams import HashingReader

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
# S3's limits: every part but the last is at least 5 MiB, none above 5 GiB.
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
# Parts upload on threads of their own while the next one is read from the
# client, as the AWS SDKs do: one part at a time leaves both links idle in
# turn. This many parts, and the one being read, are in memory for one upload.
PARTS_IN_FLIGHT = 4

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


@contextmanager
def _neutral_errors(key: str):
    """Turn botocore's errors into the neutral ones callers know."""
    try:
        yield
    except ClientError as exc:
        if _code(exc) in _NOT_FOUND:
            raise ObjectNotFound(key) from exc
        raise StorageError(f"S3 refused the request ({_code(exc) or 'unknown'})") from exc
    except BotoCoreError as exc:
        raise StorageError("S3 request failed") from exc


class _Part:
    """One part's bytes, in an anonymous mmap of its own. Unmapping returns
    the memory to the OS at once: buffers from malloc would stay in the
    worker's arenas after a large upload and keep its RSS high."""

    def __init__(self, number: int, size: int):
        self.number = number
        self.length = 0
        self.last = False
        self._buffer = mmap.mmap(-1, size)

    def write(self, data: bytes) -> None:
        self._buffer.write(data)
        self.length += len(data)

    @property
    def body(self) -> mmap.mmap | bytes:
        if self.length == len(self._buffer):
            self._buffer.seek(0)
            return self._buffer  # file-like: botocore reads it without a copy
        return self._buffer[: self.length]

    def close(self) -> None:
        self._buffer.close()


class _Parts:
    """Cuts a stream into part_size pieces. One byte of look-ahead tells a
    full piece that ends the stream from one with more to come."""

    def __init__(self, reader: HashingReader, part_size: int):
        self._reader = reader
        self._part_size = part_size
        self._carry = b""
        self._number = 0

    def next(self) -> _Part:
        self._number += 1
        part = _Part(self._number, self._part_size)
        try:
            part.write(self._carry)
            while part.length < self._part_size:
                chunk = self._reader.read(min(CHUNK_SIZE, self._part_size - part.length))
                if not chunk:
                    part.last = True
                    return part
                part.write(chunk)
            self._carry = self._reader.read(1)
            part.last = not self._carry
            return part
        except BaseException:
            part.close()
            raise


class _Body(io.RawIOBase):
    """A GetObject body whose read errors are neutral ones."""

    def __init__(self, body, key: str):
        self._body = body
        self._key = key

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        with _neutral_errors(self._key):
            return self._body.read(None if size is None or size < 0 else size)

    def close(self) -> None:
        self._body.close()
        super().close()


class S3Storage(Storage):
    name = "s3"

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None,
        region: str,
        part_size: int,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
    ):
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"S3 part size must be within {MIN_PART_SIZE}..{MAX_PART_SIZE} bytes")
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region
        self.part_size = part_size
        self._client_settings = {
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "retries": {"mode": "standard", "total_max_attempts": max_attempts},
        }
        self._client: BaseClient | None = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> BaseClient:
        # Built on first use, not in __init__: resolving credentials may ask
        # the instance metadata service. boto3 clients are thread-safe, so
        # every thread then shares this one.
        with self._client_lock:
            if self._client is None:
                self._client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    region_name=self.region,
                    config=Config(
                        **self._client_settings,
                        signature_version="s3v4",
                        # MinIO and friends serve buckets by path, not by subdomain.
                        s3={"addressing_style": "path"} if self.endpoint_url else {},
                    ),
                )
            return self._client

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        max_size: int,
        expected_size: int | None = None,
        sha256: bool = True,
    ) -> StoredObject:
        reader = HashingReader(stream, max_size=max_size, expected_size=expected_size, sha256=sha256)
        parts = _Parts(reader, self.part_size)
        first = parts.next()
        if first.last:
            try:
                with _neutral_errors(key):
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=first.body)
            finally:
                first.close()
        else:
            self._put_multipart(key, parts, first)
        return StoredObject(key=key, size=reader.size, sha256=reader.sha256)

    def _put_multipart(self, key: str, parts: _Parts, first: _Part) -> None:
        """Upload `first` and all the parts that follow.

        S3 shows the object only on completion; any failure aborts the upload,
        once no part is still uploading, so no parts linger (and bill) in the
        bucket.
        """
        try:
            with _neutral_errors(key):
                upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        except BaseException:
            first.close()
            raise
        try:
            done = self._upload_parts(key, upload_id, parts, first)
            with _neutral_errors(key):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
                )
        except BaseException:
            self._abort(key, upload_id)
            raise

    def _upload_parts(self, key: str, upload_id: str, parts: _Parts, part: _Part) -> list[dict]:
        done = []
        uploading = deque()
        # Leaving the pool waits for the uploads still running, also on error.
        with ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="s3-part") as pool:
            try:
                while True:
                    uploading.append(pool.submit(self._upload_part, key, upload_id, part))
                    if part.last:
                        break
                    if len(uploading) == PARTS_IN_FLIGHT:
                        done.append(uploading.popleft().result())
                    part = parts.next()
                while uploading:
                    done.append(uploading.popleft().result())
            except BaseException:
                for upload in uploading:
                    upload.cancel()
                raise
        return done

    def _upload_part(self, key: str, upload_id: str, part: _Part) -> dict:
        try:
            with _neutral_errors(key):
                response = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=part.number, Body=part.body
                )
            return {"PartNumber": part.number, "ETag": response["ETag"]}
        finally:
            part.close()

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (BotoCoreError, ClientError):
            # The original error matters more; sweep_abandoned collects the rest.
            logger.warning("could not abort multipart upload %s of %s", upload_id, key, exc_info=True)

    def copy(self, source: str, target: str) -> None:
        size = self.stat(source)
        with _neutral_errors(source):
            if size <= MAX_PART_SIZE:  # CopyObject's own limit
                self.client.copy_object(
                    Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": source}
                )
            else:  # a multipart copy, part by part inside S3
                self.client.copy(
                    {"Bucket": self.bucket, "Key": source},
                    self.bucket,
                    target,
                    Config=TransferConfig(multipart_chunksize=self.part_size * 20),
                )

    def open_read(self, key: str, byte_range: tuple[int, int] | None = None) -> BinaryIO:
        params = {"Bucket": self.bucket, "Key": key}
        if byte_range is not None:
            params["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        with _neutral_errors(key):
            body = self.client.get_object(**params)["Body"]
        return _Body(body, key)

    def stat(self, key: str) -> int:
        with _neutral_errors(key):
            return self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]

    def delete(self, key: str) -> None:
        # S3 answers 204 whether or not the key existed.
        with _neutral_errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def presign_get(
        self, key: str, *, expires_in: int, filename: str | None = None, content_type: str | None = None
    ) -> str | None:
        params = {"Bucket": self.bucket, "Key": key}
        if filename is not None:
            params["ResponseContentDisposition"] = content_disposition(filename)
        if content_type is not None:
            params["ResponseContentType"] = content_type
        with _neutral_errors(key):
            return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)

    def presign_put(self, key: str, *, expires_in: int, size: int, content_type: str) -> PresignedPut | None:
        # Content-Length and Content-Type are both signed: S3 refuses a body
        # of any other size or type, so the reservation bounds the upload.
        params = {"Bucket": self.bucket, "Key": key, "ContentLength": size, "ContentType": content_type}
        with _neutral_errors(key):
            url = self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_in)
        return PresignedPut(url=url, headers={"Content-Type": content_type})

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 bucket {self.bucket!r} is not reachable") from exc

    def sweep_abandoned(self, live_keys: Callable[[], Collection[str]]) -> tuple[int, int]:
        with _neutral_errors(self.bucket):
            uploads = [
                upload
                for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket)
                for upload in page.get("Uploads", [])
            ]
        live = set(live_keys())
        count = freed = 0
        with _neutral_errors(self.bucket):
            for upload in uploads:
                if upload["Key"] in live:
                    continue
                try:
                    size = self._uploaded_bytes(upload["Key"], upload["UploadId"])
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                except ClientError as exc:
                    if _code(exc) == "NoSuchUpload":  # completed or aborted meanwhile
                        continue
                    raise
                count += 1
                freed += size
        return count, freed

    def _uploaded_bytes(self, key: str, upload_id: str) -> int:
        pages = self.client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=key, UploadId=upload_id
        )
        return sum(part["Size"] for page in pages for part in page.get("Parts", []))

    def iter_keys(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        with _neutral_errors(prefix):
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"], obj["Size"], obj["LastModified"].timestamp()
