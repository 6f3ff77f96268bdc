"""Where objects live. Every key is built here from validated parts, never
from raw request input."""

import hashlib
import re
import secrets

_SAFE_PART = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def is_safe_part(value: str) -> bool:
    """Whether `value` may stand as one part of a key (a tenant id, a cache
    hash): 1-128 of A-Z, a-z, 0-9, '_', '.', '-', and never '.' or '..'."""
    # fullmatch: `$` would also match before a trailing newline.
    return bool(_SAFE_PART.fullmatch(value)) and value not in (".", "..")


def _part(value: str) -> str:
    if not is_safe_part(value):
        raise ValueError(f"unsafe key part: {value!r}")
    return value


def cache_object(tenant_id: str, artifact_hash: str) -> str:
    """A fresh key for one version of a cache entry (each PUT gets its own)."""
    return f"cache/{_part(tenant_id)}/{_part(artifact_hash)}/{secrets.token_hex(8)}"


def tool_object(tenant_id: str, tool: str, entry_name: str) -> str:
    """A fresh key for one version of a build tool's cache entry.

    Tool keys may hold '/' and run long, so the key names the entry by a
    digest; the tool stands before it, so namespaces never share a key. Same
    shape as cache_object's (four parts), for gc's orphan sweep.
    """
    digest = hashlib.sha256(entry_name.encode()).hexdigest()[:48]
    return f"cache/{_part(tenant_id)}/{_part(tool)}.{digest}/{secrets.token_hex(8)}"


def blob_object(tenant_id: str) -> str:
    """A fresh key for an artifact blob.

    Blob keys are random, not content-addressed: bytes are written before
    their hash is known (and, for presigned uploads, by the client), and the
    blob row records where they are.
    """
    return f"blobs/{_part(tenant_id)}/{secrets.token_hex(16)}"


def staging_object(tenant_id: str) -> str:
    """Where one presigned reservation's bytes land.

    Never a blob's key: a presigned URL cannot be revoked, so whatever it
    writes is copied to a blob key (that no URL names) before it is hashed,
    and what arrives here afterwards is never read again.
    """
    return f"staging/{_part(tenant_id)}/{secrets.token_hex(16)}"


def partial_tag(key: str) -> str:
    """A short, filename-safe digest of a key, for a partial upload's name."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]
