"""Routes that work without an API key: Hoard's signed upload and download
URLs, and public links. Limited per client address."""

from flask import Blueprint, jsonify, request

from .. import ratelimit
from ..services import links
from ..services.artifacts import presigned, reads
from . import responses, serializers

bp = Blueprint("public", __name__)


@bp.put("/v1/uploads/<token>")
@ratelimit.public
def receive_upload(token: str):
    receipt = presigned.receive_upload(token, request.stream, content_length=request.content_length)
    return jsonify(serializers.upload_receipt(receipt))


@bp.route("/v1/blobs/<token>", methods=["GET", "HEAD"])
@ratelimit.public
def signed_download(token: str):
    return _send(reads.artifact_for_download_token(token))


@bp.route("/dl/<link_id>", methods=["GET", "HEAD"])
@ratelimit.public
def link_download(link_id: str):
    return _send(links.artifact_for_link(link_id))


def _send(artifact):
    return responses.send_download(
        reads.open_download(artifact, with_body=request.method == "GET"),
        content_type=artifact.content_type,
        download_name=artifact.filename,
        ranges=True,
    )
