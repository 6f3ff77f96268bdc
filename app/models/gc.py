from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db


class GcTotal(db.Model):
    """What gc runs have removed, per category (services/gc.py), since the
    database was made: /metrics reads it, whichever process ran gc."""

    __tablename__ = "gc_totals"

    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    runs: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    objects: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    last_run_at: Mapped[datetime | None]
