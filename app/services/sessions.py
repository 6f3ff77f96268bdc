"""Sessions: labels on artifacts, plus a seal that persists."""

from datetime import datetime

from sqlalchemy import select

from ..clock import now
from ..errors import InvalidRequest, SessionNotFound, SessionSealed
from ..extensions import db
from ..models import Session, Tenant
from . import cursors, validation
from .cursors import Position


def lock_for_upload(tenant: Tenant, session_id: str | None) -> Session | None:
    """The session row locked for this transaction; SessionSealed when sealed."""
    if session_id is None:
        return None
    session = db.session.scalar(
        select(Session)
        .where(Session.tenant_id == tenant.id, Session.session_id == session_id)
        .with_for_update()
    )
    if session is not None and session.sealed_at is not None:
        raise SessionSealed(f"session {session_id!r} is sealed")
    return session


def ensure_open(tenant: Tenant, session_id: str | None) -> None:
    """Fail fast, before any bytes are stored, when the session is sealed."""
    if session_id is None:
        return
    sealed_at = db.session.scalar(
        select(Session.sealed_at).where(Session.tenant_id == tenant.id, Session.session_id == session_id)
    )
    if sealed_at is not None:
        raise SessionSealed(f"session {session_id!r} is sealed")


def count_artifact(tenant: Tenant, session_id: str | None, session: Session | None) -> None:
    """Record one more artifact in the session (within the caller's transaction)."""
    if session_id is None:
        return
    timestamp = now()
    if session is None:
        db.session.add(
            Session(
                tenant_id=tenant.id,
                session_id=session_id,
                artifact_count=1,
                first_artifact_at=timestamp,
                last_artifact_at=timestamp,
            )
        )
    else:
        session.artifact_count += 1
        session.last_artifact_at = timestamp


def seal_session(tenant: Tenant, session_id: str) -> Session:
    """Seal once; sealing again returns the first seal. Irreversible."""
    session_id = validation.label(session_id, "session_id")
    if session_id is None:
        raise InvalidRequest("session_id is required")
    session = db.session.scalar(
        select(Session)
        .where(Session.tenant_id == tenant.id, Session.session_id == session_id)
        .with_for_update()
    )
    if session is None:
        raise SessionNotFound(f"session {session_id!r} has no artifacts")
    session.sealed_at = session.sealed_at or now()  # the first seal stands
    db.session.commit()
    return session


def list_sessions(
    tenant: Tenant,
    *,
    limit: int,
    after: Position | None,
    created_after: datetime | None,
    created_before: datetime | None,
) -> cursors.Page:
    """Newest activity first, keyset-paginated on (last_artifact_at, session_id)."""
    query = select(Session).where(Session.tenant_id == tenant.id)
    if created_after is not None:
        query = query.where(Session.first_artifact_at > created_after)
    if created_before is not None:
        query = query.where(Session.first_artifact_at < created_before)
    return cursors.page(query, at=Session.last_artifact_at, key=Session.session_id, after=after, limit=limit)
