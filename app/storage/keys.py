"""Where objects live. Every key is built here from validated parts, never
from raw request input."""

import re
import secrets

_SAFE_PART = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _part(value: str) -> str:
    if not _SAFE_PART.match(value) or value in (".", ".."):
        raise ValueError(f"unsafe key part: {value!r}")
    return value


def cache_object(tenant_id: str, artifact_hash: str) -> str:
    """A fresh key for one version of a cache entry (each PUT gets its own)."""
    return f"cache/{_part(tenant_id)}/{_part(artifact_hash)}/{secrets.token_hex(8)}"


def blob_object(tenant_id: str, content_hash: str) -> str:
    if not _HEX64.match(content_hash):
        raise ValueError("content hash must be lowercase hex SHA-256")
    return f"blobs/{_part(tenant_id)}/{content_hash[:2]}/{content_hash}"


def upload_object(tenant_id: str, artifact_id: str) -> str:
    """Where the bytes of a presigned upload land before completion."""
    return f"uploads/{_part(tenant_id)}/{_part(artifact_id)}"


def staging_object(tenant_id: str) -> str:
    """A unique key for bytes whose content hash is not yet known."""
    return f"staging/{_part(tenant_id)}/{secrets.token_hex(16)}"
