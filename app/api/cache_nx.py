"""Nx's custom remote cache (Nx 20.8+, its OpenAPI document): PUT and GET
/v1/cache/{hash}, beside the Artifacta routes. Errors are text/plain, which
the Nx CLI prints (errors.py)."""

from flask import Blueprint, Response

from ..auth import require_tenant
from ..services import tool_cache
from . import parsing, responses

bp = Blueprint("nx_cache", __name__, url_prefix="/v1/cache")


@bp.route("/<path:artifact_hash>", methods=["PUT"])
def upload(artifact_hash: str):
    tenant = require_tenant()
    length = parsing.required_content_length()
    tool_cache.put_entry(tenant, tool_cache.NX, artifact_hash, parsing.body_stream(), content_length=length)
    return Response(status=200)


@bp.route("/<path:artifact_hash>", methods=["GET"])
def download(artifact_hash: str):
    found = tool_cache.read_entry(require_tenant(), tool_cache.NX, artifact_hash, with_body=True)
    return responses.send_download(found.download, content_type="application/octet-stream")
