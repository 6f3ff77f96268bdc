"""Turborepo Remote Cache API (/v8/artifacts), per ../shared/specs/cache-v8.md."""

from flask import Blueprint, Response, jsonify, request

from .. import ratelimit
from ..auth import require_tenant
from ..services import cache
from . import cache_reads, parsing, serializers

bp = Blueprint("cache", __name__, url_prefix="/v8/artifacts")

PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, PUT, POST, OPTIONS",
    "Access-Control-Allow-Headers": (
        "Authorization, Content-Type, User-Agent, x-artifact-duration, x-artifact-tag, "
        "x-artifact-sha, x-artifact-dirty-hash, x-artifact-client-ci, x-artifact-client-interactive"
    ),
    "Access-Control-Max-Age": "600",
}


def _route(rule: str, **options):
    # Flask's automatic OPTIONS would answer preflights without the CORS
    # headers turbo needs; preflight() below answers every OPTIONS instead.
    return bp.route(rule, provide_automatic_options=False, **options)


def _tenant():
    tenant = require_tenant()
    cache.check_team(tenant, team_id=request.args.get("teamId"), slug=request.args.get("slug"))
    return tenant


@_route("", methods=["OPTIONS"])
@_route("/<path:anything>", methods=["OPTIONS"])
def preflight(anything: str = ""):
    return Response(status=200, headers=PREFLIGHT_HEADERS)


@_route("/status", methods=["GET"])
def status():
    return jsonify(serializers.cache_status(cache.cache_status(_tenant())))


@_route("", methods=["POST"])
def query():
    tenant = _tenant()
    hashes = parsing.cache_query_hashes(max_hashes=cache.MAX_QUERY_HASHES)
    return jsonify(serializers.cache_query(cache.query_entries(tenant, hashes)))


@_route("/events", methods=["POST"])
def events():
    tenant = _tenant()
    body = parsing.json_body()
    client_ci = parsing.header_str("x-artifact-client-ci", max_length=50)
    client_interactive = parsing.header_flag("x-artifact-client-interactive")
    cache.record_events(
        tenant, parsing.cache_events(body), client_ci=client_ci, client_interactive=client_interactive
    )
    return Response(status=200)


@_route("/<path:artifact_hash>", methods=["PUT"])
def upload(artifact_hash: str):
    tenant = _tenant()
    headers = cache.EntryHeaders(
        duration_ms=parsing.header_int("x-artifact-duration"),
        tag=parsing.stored_header("x-artifact-tag", max_length=1024),
        git_sha=parsing.stored_header("x-artifact-sha", max_length=128),
        dirty_hash=parsing.stored_header("x-artifact-dirty-hash", max_length=128),
        client_ci=parsing.header_str("x-artifact-client-ci", max_length=50),
        client_interactive=parsing.header_flag("x-artifact-client-interactive"),
    )
    cache.put_entry(
        tenant, artifact_hash, parsing.body_stream(), content_length=request.content_length, headers=headers
    )
    # turbo ignores these URLs: a Host this server does not answer to gets a
    # bare path rather than a failed upload.
    return jsonify(serializers.cache_upload(parsing.base_url_if_allowed(), artifact_hash)), 202


@_route("/<path:artifact_hash>", methods=["GET", "HEAD"])
@ratelimit.exempt  # answer() charges the request itself
def download(artifact_hash: str):
    """Answered by cache_reads.CacheReads before Flask routes anything; the
    rule is here so the URL map (a 405's Allow, url_for) knows the route."""
    return cache_reads.answer(request.environ, artifact_hash)
