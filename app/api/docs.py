"""GET /openapi.json: the OpenAPI 3.1 document of both APIs (no auth, not limited)."""

from functools import cache
from importlib import resources

from flask import Blueprint, Response

from .. import ratelimit

bp = Blueprint("docs", __name__)


@cache
def _document() -> bytes:
    # Read on first use, not at import: importing the app does no I/O.
    return resources.files("app").joinpath("openapi.json").read_bytes()


@bp.get("/openapi.json")
@ratelimit.exempt
def openapi_document():
    return Response(_document(), mimetype="application/json")
