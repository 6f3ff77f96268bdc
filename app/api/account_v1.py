"""Account routes: health (no auth, not limited) and whoami."""

from flask import Blueprint, jsonify

from .. import ratelimit
from ..auth import require_principal
from ..services import health
from ..services.whoami import account_of
from . import serializers

bp = Blueprint("account", __name__)


@bp.get("/health")
@ratelimit.exempt
def health_check():
    report = health.check()
    return jsonify(serializers.health(report)), 200 if report.healthy else 503


@bp.get("/v1/whoami")
def whoami():
    return jsonify(serializers.account(account_of(require_principal())))
