"""The storage backend chosen by configuration, built once per process."""

from flask import Flask, current_app

from .base import (
    BodyTooLarge,
    IncompleteBody,
    ObjectNotFound,
    PresignedPut,
    Storage,
    StorageError,
    StoredObject,
)

__all__ = [
    "BodyTooLarge",
    "IncompleteBody",
    "ObjectNotFound",
    "PresignedPut",
    "Storage",
    "StorageError",
    "StoredObject",
    "get_storage",
    "init_storage",
]


def _build(config) -> Storage:
    backend = config["STORAGE_BACKEND"]
    if backend == "local":
        from .local import LocalStorage

        return LocalStorage(config["STORAGE_LOCAL_ROOT"])
    if backend == "s3":
        from .s3 import S3Storage

        return S3Storage(
            bucket=config["S3_BUCKET"],
            endpoint_url=config["S3_ENDPOINT_URL"],
            region=config["S3_REGION"],
            part_size=config["S3_PART_SIZE"],
            connect_timeout=config["S3_CONNECT_TIMEOUT_SECONDS"],
            read_timeout=config["S3_READ_TIMEOUT_SECONDS"],
            max_attempts=config["S3_MAX_ATTEMPTS"],
        )
    raise ValueError(f"unknown STORAGE_BACKEND {backend!r} (expected 'local' or 's3')")


def init_storage(app: Flask) -> None:
    """Build the backend lazily: constructing a client does no I/O, but the
    factory should not even pay for that until a request needs it."""
    app.extensions["hoard_storage"] = None


def get_storage() -> Storage:
    app = current_app._get_current_object()
    storage = app.extensions.get("hoard_storage")
    if storage is None:
        storage = app.extensions["hoard_storage"] = _build(app.config)
    return storage
