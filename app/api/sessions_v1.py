"""Sessions API (/v1/sessions)."""

from flask import Blueprint, jsonify, request

from ..auth import require_tenant
from ..services import sessions
from . import parsing, serializers

bp = Blueprint("sessions", __name__, url_prefix="/v1/sessions")


@bp.post("/<path:session_id>/seal")
def seal_session(session_id: str):
    session = sessions.seal_session(require_tenant(), session_id)
    return jsonify(serializers.sealed_session(session))


@bp.get("")
def list_sessions():
    tenant = require_tenant()
    args = request.args
    page = sessions.list_sessions(
        tenant,
        limit=parsing.limit(args.get("limit")),
        created_after=parsing.timestamp(args.get("created_after"), "created_after"),
        created_before=parsing.timestamp(args.get("created_before"), "created_before"),
        after=parsing.session_cursor(args),  # read last, as the service once did
    )
    return jsonify(serializers.page("sessions", page, serializers.session))
