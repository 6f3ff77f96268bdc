"""Artifacts API (/v1/artifacts), per ../shared/specs/artifacts-v1.md."""

from flask import Blueprint, jsonify, request

from ..auth import require_tenant
from ..services import links
from ..services.artifacts import lifecycle, presigned, reads, uploads
from ..services.plans import plan_for
from . import parsing, serializers

bp = Blueprint("artifacts", __name__, url_prefix="/v1/artifacts")


@bp.post("")
def upload():
    tenant = require_tenant()
    upload = parsing.artifact_upload(plan_for(tenant.plan))
    artifact, created = uploads.create_artifact(
        tenant,
        body=upload.body,
        size_hint=upload.size,
        max_size=upload.max_size,
        fields=upload.fields,
        idempotency_key=parsing.idempotency_key(),
    )
    return jsonify(serializers.artifact(artifact)), 201 if created else 200


@bp.post("/upload-url")
def reserve_upload():
    tenant = require_tenant()
    body = parsing.json_object()
    base_url = parsing.base_url()
    fields, size_bytes = parsing.reservation(body, plan_for(tenant.plan))
    ticket = presigned.reserve_upload(tenant, fields=fields, size_bytes=size_bytes, base_url=base_url)
    return jsonify(serializers.upload_ticket(ticket)), 201


@bp.post("/<artifact_id>/complete")
def complete_upload(artifact_id: str):
    return jsonify(serializers.artifact(presigned.complete_upload(require_tenant(), artifact_id)))


@bp.get("/<artifact_id>")
def get_artifact(artifact_id: str):
    return jsonify(serializers.artifact(reads.get_artifact(require_tenant(), artifact_id)))


@bp.get("/<artifact_id>/download-url")
def download_url(artifact_id: str):
    ticket = reads.download_url(require_tenant(), artifact_id, base_url=parsing.base_url())
    return jsonify(serializers.download_ticket(ticket))


# A static rule: Werkzeug matches it before /<artifact_id>/..., so "batch"
# is never taken for an artifact id.
@bp.post("/batch/download-urls")
def batch_download_urls():
    tenant = require_tenant()
    ids = parsing.artifact_ids(parsing.json_object(), max_ids=reads.MAX_BATCH_IDS)
    entries = reads.download_urls(tenant, ids, base_url=parsing.base_url())
    return jsonify(serializers.download_urls(entries))


@bp.get("")
def list_artifacts():
    tenant = require_tenant()
    page = reads.list_artifacts(tenant, **parsing.artifact_listing(request.args))
    return jsonify(serializers.page("artifacts", page, serializers.artifact))


@bp.delete("/<artifact_id>")
def delete_artifact(artifact_id: str):
    artifact = lifecycle.delete_artifact(require_tenant(), artifact_id)
    return jsonify(serializers.deleted_artifact(artifact))


@bp.post("/<artifact_id>/extend-ttl")
def extend_ttl(artifact_id: str):
    tenant = require_tenant()
    ttl_seconds = parsing.required_ttl(parsing.json_object())
    return jsonify(serializers.artifact(lifecycle.extend_ttl(tenant, artifact_id, ttl_seconds)))


@bp.post("/<artifact_id>/links")
def create_link(artifact_id: str):
    tenant = require_tenant()
    body = parsing.json_object(default={})
    base_url = parsing.base_url()  # before the link exists: a refused Host makes none
    link = links.create_link(tenant, artifact_id, expires_in=parsing.link_expires_in(body))
    return jsonify(serializers.link(link, f"{base_url}/dl/{link.id}")), 201
