"""Nx's custom remote cache (Nx 20.8+, its OpenAPI document): PUT and GET
/v1/cache/{hash}, beside the Artifacta routes. Errors are text/plain, which
the Nx CLI prints (errors.py)."""

from flask import Blueprint, Response, request

from .. import ratelimit
from ..auth import require_tenant
from ..services import tool_cache
from . import cache_reads, parsing

bp = Blueprint("nx_cache", __name__, url_prefix="/v1/cache")


@bp.route("/<path:artifact_hash>", methods=["PUT"])
def upload(artifact_hash: str):
    tenant = require_tenant()
    length = parsing.required_content_length()
    tool_cache.put_entry(tenant, tool_cache.NX, artifact_hash, parsing.body_stream(), content_length=length)
    return Response(status=200)


@bp.route("/<path:artifact_hash>", methods=["GET"])
@ratelimit.exempt  # answer_tool() charges the request itself
def download(artifact_hash: str):
    """Answered by cache_reads.CacheReads before Flask routes anything; the
    rule is here so the URL map (a 405's Allow) knows the route."""
    return cache_reads.answer_tool(request.environ, tool_cache.NX, artifact_hash)
