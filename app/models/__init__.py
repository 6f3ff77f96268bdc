"""The model layer: one module per aggregate, all on the shared declarative base."""

from .artifact import Artifact, ArtifactMeta, Blob, IdempotencyRecord
from .cache import CacheEntry, CacheEvent
from .lease import UploadLease
from .link import Link
from .session import Session
from .tenant import ApiKey, Tenant, ToolUsageMonth, UsageMonth

__all__ = [
    "ApiKey",
    "Artifact",
    "ArtifactMeta",
    "Blob",
    "CacheEntry",
    "CacheEvent",
    "IdempotencyRecord",
    "Link",
    "Session",
    "Tenant",
    "ToolUsageMonth",
    "UploadLease",
    "UsageMonth",
]
