"""Sessions API (/v1/sessions)."""

from flask import Blueprint, jsonify, request

from ..auth import require_tenant
from ..services import sessions
from . import parsing, serializers

bp = Blueprint("sessions", __name__, url_prefix="/v1/sessions")


@bp.post("/<path:session_id>/seal")
def seal_session(session_id: str):
    return jsonify(serializers.sealed_session(sessions.seal_session(require_tenant(), session_id)))


@bp.get("")
def list_sessions():
    tenant = require_tenant()
    page = sessions.list_sessions(tenant, **parsing.session_listing(request.args))
    return jsonify(serializers.page("sessions", page, serializers.session))
