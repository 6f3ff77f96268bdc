from datetime import datetime, timedelta

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    and_,
    or_,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import now
from ..extensions import db
from .types import BYTE_ORDER_ID


class Blob(db.Model):
    """Stored bytes, shared by every artifact of a tenant with the same content.

    A blob lives as long as an artifact row references it; the foreign key
    from artifacts makes deleting a referenced blob impossible.
    """

    __tablename__ = "blobs"
    __table_args__ = (UniqueConstraint("tenant_id", "content_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    content_hash: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(default=now)


class Artifact(db.Model):
    __tablename__ = "artifacts"
    __table_args__ = (
        # The listing order is (created_at DESC, id DESC) within a tenant; each
        # exact-match filter gets an index that ends in the same keyset.
        Index("ix_artifacts_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_artifacts_tenant_session", "tenant_id", "session_id", "created_at", "id"),
        Index("ix_artifacts_tenant_agent", "tenant_id", "agent_id", "created_at", "id"),
        Index("ix_artifacts_tenant_filename", "tenant_id", "filename", "created_at", "id"),
        Index("ix_artifacts_blob", "blob_id"),
        # Garbage collection's scans; partial, since most rows have none of these.
        Index(
            "ix_artifacts_deleted_at",
            "deleted_at",
            postgresql_where=text("deleted_at IS NOT NULL"),
            sqlite_where=text("deleted_at IS NOT NULL"),
        ),
        Index(
            "ix_artifacts_expires_at",
            "expires_at",
            postgresql_where=text("expires_at IS NOT NULL"),
            sqlite_where=text("expires_at IS NOT NULL"),
        ),
        Index(
            "ix_artifacts_pending_upload",
            "upload_expires_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    # Byte order for the (created_at DESC, id DESC) contract, whatever the
    # database's default collation.
    id: Mapped[str] = mapped_column(BYTE_ORDER_ID, primary_key=True)  # art_...
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    blob_id: Mapped[int | None] = mapped_column(ForeignKey("blobs.id", ondelete="RESTRICT"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[str | None] = mapped_column(String(128))
    agent_id: Mapped[str | None] = mapped_column(String(128))
    metadata_json: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    status: Mapped[str] = mapped_column(String(8), default="active")  # pending | active
    created_at: Mapped[datetime] = mapped_column(default=now)
    expires_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    # A presigned reservation: where the client's bytes are to land, and until when.
    upload_key: Mapped[str | None] = mapped_column(String(400))
    upload_expires_at: Mapped[datetime | None]

    blob: Mapped[Blob | None] = relationship(lazy="joined")

    # An artifact is live until it is deleted or its expiry passes: listings
    # and link counts see only live ones, and reads refuse the rest.
    @classmethod
    def live_at(cls, current: datetime) -> ColumnElement[bool]:
        return and_(cls.deleted_at.is_(None), or_(cls.expires_at.is_(None), cls.expires_at > current))

    def expired_at(self, current: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= current


class ArtifactMeta(db.Model):
    """One metadata pair per row, so `metadata.<key>=<value>` filters use an index."""

    __tablename__ = "artifact_meta"
    __table_args__ = (Index("ix_artifact_meta_lookup", "tenant_id", "key", "value"),)

    artifact_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(String(8192))


class IdempotencyRecord(db.Model):
    """An Idempotency-Key's first artifact: a retry within REPLAY_WINDOW
    replays it, and gc removes older records."""

    REPLAY_WINDOW = timedelta(hours=24)

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(256))
    artifact_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=now)
