"""The model layer: one module per aggregate, all on the shared declarative base."""

from .artifact import Artifact, ArtifactMeta, Blob, IdempotencyRecord
from .cache import CacheEntry, CacheEvent
from .gc import GcTotal
from .lease import UploadLease
from .link import Link
from .session import Session
from .tenant import ApiKey, Tenant, UsageHour, UsageMonth

__all__ = [
    "ApiKey",
    "Artifact",
    "ArtifactMeta",
    "Blob",
    "CacheEntry",
    "CacheEvent",
    "GcTotal",
    "IdempotencyRecord",
    "Link",
    "Session",
    "Tenant",
    "UploadLease",
    "UsageHour",
    "UsageMonth",
]
