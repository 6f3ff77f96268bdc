"""Models → the JSON the contracts specify. Every field, always."""

from datetime import datetime

from ..models import Artifact, Link, Session


def timestamp(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def artifact(item: Artifact) -> dict:
    return {
        "artifact_id": item.id,
        "filename": item.filename,
        "content_type": item.content_type,
        "size_bytes": item.size_bytes,
        "content_hash": item.content_hash if item.status == "active" else None,
        "session_id": item.session_id,
        "agent_id": item.agent_id,
        "metadata": item.metadata_json or {},
        "status": item.status,
        "created_at": timestamp(item.created_at),
        "expires_at": timestamp(item.expires_at),
        "deleted_at": timestamp(item.deleted_at),
    }


def link(item: Link, url: str) -> dict:
    return {
        "link_id": item.id,
        "url": url,
        "artifact_id": item.artifact_id,
        "expires_at": timestamp(item.expires_at),
        "created_at": timestamp(item.created_at),
    }


def session(item: Session) -> dict:
    return {
        "session_id": item.session_id,
        "artifact_count": item.artifact_count,
        "is_sealed": item.sealed_at is not None,
        "first_artifact_at": timestamp(item.first_artifact_at),
        "last_artifact_at": timestamp(item.last_artifact_at),
    }


def sealed_session(item: Session) -> dict:
    return {
        "session_id": item.session_id,
        "status": "sealed",
        "sealed_at": timestamp(item.sealed_at),
        "artifact_count": item.artifact_count,
    }
