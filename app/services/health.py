"""Whether the database and the storage answer."""

import logging

from flask import current_app
from sqlalchemy import text

from ..extensions import db
from ..storage import StorageError, get_storage

log = logging.getLogger(__name__)


def check() -> dict:
    """{"status": "ok"|"degraded", "version", "checks": {part: "ok"|"failed"}}."""
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
    healthy = all(value == "ok" for value in checks.values())
    return {
        "status": "ok" if healthy else "degraded",
        "version": current_app.config["VERSION"],
        "checks": checks,
    }
