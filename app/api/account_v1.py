"""Account routes: health (no auth) and whoami."""

from flask import Blueprint, jsonify

from ..extensions import limiter
from ..services import health

bp = Blueprint("account", __name__)


@bp.get("/health")
@limiter.exempt
def health_check():
    report = health.check()
    return jsonify(report), 200 if report["status"] == "ok" else 503
