from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import now
from ..extensions import db
from .artifact import Artifact


class Link(db.Model):
    """A public, unauthenticated download link to one artifact."""

    __tablename__ = "links"
    __table_args__ = (Index("ix_links_tenant_expires", "tenant_id", "expires_at"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)  # lnk_...
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    artifact_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=now)
    expires_at: Mapped[datetime]

    artifact: Mapped[Artifact] = relationship(lazy="joined")
