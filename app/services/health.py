"""Whether the database, the storage and the rate-limit store answer."""

import logging
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import text

from .. import ratelimit
from ..extensions import db
from ..storage import StorageError, get_storage

log = logging.getLogger(__name__)


@dataclass
class HealthReport:
    version: str
    checks: dict[str, str]  # part -> "ok" | "failed"

    @property
    def healthy(self) -> bool:
        return all(value == "ok" for value in self.checks.values())


def check() -> HealthReport:
    """Whether each part (database, storage, a shared rate-limit store) answers."""
    checks = {"database": "ok", "storage": "ok"}
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
    except Exception:
        log.exception("health: database check failed")
        db.session.rollback()
        checks["database"] = "failed"
    try:
        get_storage().check()
    except (StorageError, OSError):
        log.exception("health: storage check failed")
        checks["storage"] = "failed"
    limits = ratelimit.rate_limits()
    if limits.shared_store:
        # With Redis down every limited request answers 503, so a load
        # balancer should hear it here too.
        checks["rate_limits"] = "ok" if limits.store_answers() else "failed"
    return HealthReport(version=current_app.config["VERSION"], checks=checks)
