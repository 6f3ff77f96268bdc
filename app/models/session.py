from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .types import BYTE_ORDER_LABEL


class Session(db.Model):
    """A session label's activity and its seal, kept even after its artifacts go."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_tenant_activity", "tenant_id", "last_artifact_at", "session_id"),)

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    session_id: Mapped[str] = mapped_column(BYTE_ORDER_LABEL, primary_key=True)
    artifact_count: Mapped[int] = mapped_column(Integer, default=0)
    first_artifact_at: Mapped[datetime]
    last_artifact_at: Mapped[datetime]
    sealed_at: Mapped[datetime | None]
