"""Models and service results → the JSON the contracts specify. Every field,
always; the only place a response body is shaped (errors: app/errors.py)."""

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime
from xml.sax.saxutils import escape

from .. import b64url
from ..errors import ARTIFACT_SHAPE, declined_body, error_body
from ..models import Artifact, Link, Session
from ..services.artifacts.presigned import UploadReceipt, UploadTicket
from ..services.artifacts.reads import BatchEntry, DownloadTicket
from ..services.cache import QueryAnswer
from ..services.cursors import Page, Position
from ..services.health import HealthReport
from ..services.insight import Overview
from ..services.tool_cache import Declined
from ..services.whoami import Account


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


def page(name: str, items: Page, item: Callable[[object], dict]) -> dict:
    """The list envelope every /v1 listing shares."""
    return {
        name: [item(row) for row in items.items],
        "next_cursor": cursor(items.next_after),
        "has_more": items.next_after is not None,
    }


def cursor(position: Position | None) -> str | None:
    """A listing position as an opaque cursor (api/parsing.py reads it back)."""
    if position is None:
        return None
    at, item_id = position
    return b64url.encode(json.dumps([at.isoformat(), item_id], separators=(",", ":")).encode())


def deleted_artifact(item: Artifact) -> dict:
    return {"artifact_id": item.id, "deleted": True, "deleted_at": timestamp(item.deleted_at)}


def upload_ticket(ticket: UploadTicket) -> dict:
    item = ticket.artifact
    return {
        "artifact_id": item.id,
        "status": item.status,
        "upload_url": ticket.url,
        "upload_method": "PUT",
        "upload_headers": ticket.headers,
        "upload_expires_at": timestamp(ticket.expires_at),
        "expires_in": ticket.expires_in,
        "filename": item.filename,
        "content_type": item.content_type,
        "size_bytes": item.size_bytes,
    }


def upload_receipt(receipt: UploadReceipt) -> dict:
    return {"artifact_id": receipt.artifact_id, "received_bytes": receipt.received_bytes}


def download_ticket(ticket: DownloadTicket) -> dict:
    return {
        "download_url": ticket.url,
        "expires_in": ticket.expires_in,
        "filename": ticket.artifact.filename,
        "content_type": ticket.artifact.content_type,
        "size_bytes": ticket.artifact.size_bytes,
    }


def download_urls(entries: list[BatchEntry]) -> dict:
    """A batch: each entry is download-url's answer for its id, success or
    error body, with the id added."""
    return {
        "download_urls": [
            {"artifact_id": entry.artifact_id, **download_ticket(entry.ticket)}
            if entry.error is None
            else {"artifact_id": entry.artifact_id, **error_body(entry.error, ARTIFACT_SHAPE)}
            for entry in entries
        ]
    }


def account(item: Account) -> dict:
    return {
        "tenant_id": item.tenant_id,
        "tenant_slug": item.tenant_slug,
        "tenant_name": item.tenant_name,
        "plan": item.plan.name,
        "api_key_last_4": item.api_key_last_4,
        "usage_requests_month": item.requests_this_month,
        "plan_requests_limit_month": item.plan.requests_limit_month,
        "usage_storage_bytes": item.storage_bytes,
        "plan_storage_limit_bytes": item.storage_limit_bytes,
        "active_links": item.active_links,
        "max_active_links": item.plan.max_active_links,
        "rate_limit_sustained": item.rate_limit_sustained,
        "rate_limit_burst": item.rate_limit_burst,
    }


def health(report: HealthReport) -> dict:
    return {
        "status": "ok" if report.healthy else "degraded",
        "version": report.version,
        "checks": report.checks,
    }


# -- the build cache (/v8): Turborepo's camelCase shapes ---------------------


def cache_status(status: str) -> dict:
    return {"status": status}


def cache_query(answer: QueryAnswer) -> dict[str, dict | None]:
    result: dict[str, dict | None] = {}
    for artifact_hash in answer.hashes:
        if artifact_hash in answer.invalid:
            result[artifact_hash] = {"error": {"message": "invalid hash"}}
        elif (entry := answer.entries.get(artifact_hash)) is None:
            result[artifact_hash] = None
        else:
            result[artifact_hash] = {
                "size": entry.size_bytes,
                "taskDurationMs": entry.duration_ms,
                "tag": entry.tag or "",
            }
    return result


def cache_upload(base_url: str, artifact_hash: str) -> dict:
    return {"urls": [f"{base_url}/v8/artifacts/{artifact_hash}"]}


def cache_stats(overview: Overview) -> dict:
    """`flask tenants stats`: the console overview's figures, with the period they cover."""
    totals = overview.totals
    return {
        "period": overview.period,
        "start": timestamp(overview.start),
        "end": timestamp(overview.end),
        "reported_events": {
            "remote_hits": totals.remote_hits,
            "remote_misses": totals.remote_misses,
            "local_hits": totals.local_hits,
            "local_misses": totals.local_misses,
            "ci": totals.ci_events,
            "interactive": totals.interactive_events,
            "other": totals.other_events,
        },
        "remote_hit_rate": overview.remote_hit_rate,
        "local_hit_rate": overview.local_hit_rate,
        "time_saved_ms": {
            "remote": totals.remote_saved_ms,
            "local": totals.local_saved_ms,
            "total": totals.remote_saved_ms + totals.local_saved_ms,
        },
        "requests": {"hits": totals.lookups_hit, "misses": totals.lookups_miss, "uploads": totals.uploads},
        "bytes_served": totals.bytes_served,
        "bytes_uploaded": totals.bytes_uploaded,
        "cache_entries": overview.cache_entries,
        "cache_bytes": overview.cache_bytes,
        "cache_max_bytes": overview.cache_max_bytes,
        "artifacts_stored": overview.artifacts_stored,
        "storage_bytes": overview.storage_bytes,
        "storage_limit_bytes": overview.storage_limit,
        # every build tool, turbo included: traffic over the period, what it stores now
        "tools": {tool: dataclasses.asdict(figures) for tool, figures in overview.tools.items()},
    }


def webdav_entry(href: str, size: int) -> str:
    """A WebDAV multistatus naming one file (PROPFIND of a cache entry)."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<D:multistatus xmlns:D="DAV:"><D:response>'
        f"<D:href>{escape(href)}</D:href>"
        "<D:propstat><D:prop><D:resourcetype/>"
        f"<D:getcontentlength>{size}</D:getcontentlength>"
        "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
        "</D:response></D:multistatus>"
    )


def declined_write(declined: Declined) -> dict:
    """A Rush write accepted but not stored (202): why, in the error fields' names."""
    return declined_body(declined.code, declined.message)
