"""Artifacts API (/v1/artifacts), per ../shared/specs/artifacts-v1.md."""

from flask import Blueprint, current_app, jsonify, request

from ..auth import require_tenant
from ..errors import InvalidRequest
from ..services import artifacts, links, validation
from . import parsing, serializers

bp = Blueprint("artifacts", __name__, url_prefix="/v1/artifacts")

# A base64 body is 4/3 of the decoded size, plus the other fields.
_JSON_UPLOAD_OVERHEAD = 64 * 1024


@bp.post("")
def upload():
    tenant = require_tenant()
    idempotency_key = request.headers.get("Idempotency-Key")
    if request.mimetype == "multipart/form-data":
        part, fields = parsing.multipart_upload(max_bytes=current_app.config["MULTIPART_MAX_BYTES"])
        artifact, created = artifacts.upload_multipart(
            tenant,
            stream=part.stream,
            size=part.size,
            part_filename=part.filename,
            part_content_type=part.content_type,
            raw_fields=fields,
            idempotency_key=idempotency_key,
        )
    elif request.mimetype == "application/json":
        limit = current_app.config["JSON_UPLOAD_MAX_BYTES"] * 4 // 3 + _JSON_UPLOAD_OVERHEAD
        body = parsing.json_object(max_bytes=limit)
        artifact, created = artifacts.upload_base64(tenant, body, idempotency_key=idempotency_key)
    else:
        raise InvalidRequest("send multipart/form-data or application/json")
    return jsonify(serializers.artifact(artifact)), 201 if created else 200


@bp.post("/upload-url")
def reserve_upload():
    tenant = require_tenant()
    ticket = artifacts.reserve_from_request(tenant, parsing.json_object(), base_url=parsing.base_url())
    return jsonify(serializers.upload_ticket(ticket)), 201


@bp.post("/<artifact_id>/complete")
def complete_upload(artifact_id: str):
    artifact = artifacts.complete_upload(require_tenant(), artifact_id)
    return jsonify(serializers.artifact(artifact))


@bp.get("/<artifact_id>")
def get_artifact(artifact_id: str):
    return jsonify(serializers.artifact(artifacts.get_artifact(require_tenant(), artifact_id)))


@bp.get("/<artifact_id>/download-url")
def download_url(artifact_id: str):
    ticket = artifacts.download_url(require_tenant(), artifact_id, base_url=parsing.base_url())
    return jsonify(serializers.download_ticket(ticket))


@bp.get("")
def list_artifacts():
    tenant = require_tenant()
    args = request.args
    page = artifacts.list_artifacts(
        tenant,
        filters=parsing.artifact_filters(args),
        limit=validation.limit(args.get("limit")),
        cursor=args.get("cursor"),
    )
    return jsonify(serializers.page("artifacts", page, serializers.artifact))


@bp.delete("/<artifact_id>")
def delete_artifact(artifact_id: str):
    artifact = artifacts.delete_artifact(require_tenant(), artifact_id)
    return jsonify(serializers.deleted_artifact(artifact))


@bp.post("/<artifact_id>/extend-ttl")
def extend_ttl(artifact_id: str):
    tenant = require_tenant()
    ttl = parsing.json_object().get("ttl")
    return jsonify(serializers.artifact(artifacts.extend_ttl(tenant, artifact_id, ttl)))


@bp.post("/<artifact_id>/links")
def create_link(artifact_id: str):
    tenant = require_tenant()
    body = parsing.json_object(default={})
    base_url = parsing.base_url()  # before the link exists: a refused Host makes none
    link = links.create_link(tenant, artifact_id, expires_in=body.get("expires_in"))
    return jsonify(serializers.link(link, f"{base_url}/dl/{link.id}")), 201
