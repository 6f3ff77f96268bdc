"""The plain HTTP cache: GET/HEAD/PUT on keys under /cache/<tool>/, for
ccache, sccache (WebDAV), Bazel, Gradle and Rush; see README "Point your
build tool at Hoard"."""

from flask import Blueprint, Response, jsonify, request
from werkzeug.routing import PathConverter

from .. import ratelimit
from ..auth import require_tenant
from ..services import tool_cache
from . import cache_reads, parsing, serializers

bp = Blueprint("tool_cache", __name__, url_prefix="/cache")


class KeyPath(PathConverter):
    """A path that may start with '/' or be empty: sccache doubles the slash
    after a base URL that ends in one."""

    regex = ".*?"
    part_isolating = False  # Werkzeug would infer True: the regex names no '/'


@bp.route("/<tool>/<keypath:key>", methods=["GET", "HEAD"])
@ratelimit.exempt  # answer_tool() charges the request itself
def read(tool: str, key: str):
    """Answered by cache_reads.CacheReads before Flask routes anything; the
    rule is here so the URL map (a 405's Allow) knows the route."""
    return cache_reads.answer_tool(request.environ, tool, key)


@bp.route("/<tool>/<keypath:key>", methods=["PUT"])
def write(tool: str, key: str):
    tenant = require_tenant()
    body = parsing.body_stream()
    declined = tool_cache.put_entry(tenant, tool, key, body, content_length=request.content_length)
    if declined is not None:
        return jsonify(serializers.declined_write(declined)), 202
    return Response(status=200)


@bp.route("/<tool>/<keypath:key>", methods=["MKCOL"])
def make_collection(tool: str, key: str):
    tool_cache.make_collection(require_tenant(), tool, key)
    return Response(status=201)


@bp.route("/<tool>/<keypath:key>", methods=["PROPFIND"])
def properties(tool: str, key: str):
    size = tool_cache.entry_size(require_tenant(), tool, key)
    return Response(
        serializers.webdav_entry(request.path, size),
        status=207,
        content_type='application/xml; charset="utf-8"',
    )
