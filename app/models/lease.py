from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db


class UploadLease(db.Model):
    """An upload in flight to one storage key, renewed while it runs.

    gc takes an object, temporary file or multipart upload for dead only when
    no row names its key, or the row's heartbeat stopped: the writer died.
    """

    __tablename__ = "upload_leases"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    owner: Mapped[str] = mapped_column(String(32))
    heartbeat_at: Mapped[datetime]
