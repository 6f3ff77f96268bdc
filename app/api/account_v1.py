"""Account routes: health (no auth, not limited) and whoami."""

from flask import Blueprint, jsonify

from .. import ratelimit
from ..auth import require_principal
from ..services import accounts, health

bp = Blueprint("account", __name__)


@bp.get("/health")
@ratelimit.exempt
def health_check():
    report = health.check()
    return jsonify(report), 200 if report["status"] == "ok" else 503


@bp.get("/v1/whoami")
def whoami():
    return jsonify(accounts.whoami(require_principal()))
