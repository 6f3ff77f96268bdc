"""The error family and the one place where an error becomes a response.

Each exception is named after its wire code. /v8 answers the flat Turborepo
shape (with the nested copy turbo parses); everything else answers the /v1
envelope. The choice is made by path prefix at app level, because blueprint
handlers never see 404/405 for URLs that match no route.
"""

import json
import logging
import re

from flask import Flask, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from . import metrics
from .access_log import redact
from .extensions import db
from .storage.base import BodyTooLarge, IncompleteBody

log = logging.getLogger(__name__)


class ApiError(Exception):
    code = "internal_error"
    status = 500
    message = "An unexpected error occurred."

    def __init__(self, message: str | None = None, *, headers: dict | None = None, **extra):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.headers = headers or {}
        self.extra = extra


class InvalidRequest(ApiError):
    code, status, message = "invalid_request", 400, "The request is invalid."


class TtlExceedsPlanLimit(ApiError):
    code, status, message = "ttl_exceeds_plan_limit", 400, "The TTL is longer than the plan allows."


class DigestMismatch(ApiError):
    code, status, message = "digest_mismatch", 400, "The body does not hash to its key; nothing was stored."


class UploadNotFound(ApiError):
    code, status, message = "upload_not_found", 400, "No bytes were uploaded for this artifact."


class Unauthorized(ApiError):
    code, status, message = "unauthorized", 401, "A valid API key is required."


class Forbidden(ApiError):
    code, status, message = "forbidden", 403, "This key may not access that team."


class InvalidSignature(ApiError):
    code, status, message = "invalid_signature", 403, "This URL is not valid."


class QuotaExceeded(ApiError):
    code, status, message = "quota_exceeded", 403, "The plan's quota is exhausted."


class RemoteCachingDisabled(ApiError):
    code, status, message = "remote_caching_disabled", 403, "Remote caching is disabled for this team."


class OverLimit(ApiError):
    code, status, message = "over_limit", 403, "The team is over its storage quota."


class Paused(ApiError):
    code, status, message = "paused", 403, "Remote caching is paused for this team."


class ToolDisabled(ApiError):
    code, status, message = "tool_disabled", 403, "This build tool's cache is turned off for this team."


class NotFound(ApiError):
    code, status, message = "not_found", 404, "Not found."


class CacheUnavailable(ApiError):
    """A read while the cache (or the tool's) is disabled or paused: answered
    as a miss, which every build tool takes in its stride."""

    code, status, message = "cache_unavailable", 404, "Remote caching is not available; answered as a miss."


class ArtifactNotFound(ApiError):
    code, status, message = "artifact_not_found", 404, "Artifact not found."


class SessionNotFound(ApiError):
    code, status, message = "session_not_found", 404, "Session not found."


class LinkNotFound(ApiError):
    code, status, message = "link_not_found", 404, "Link not found."


class MethodNotAllowed(ApiError):
    code, status, message = "method_not_allowed", 405, "Method not allowed."


class RecordExists(ApiError):
    code, status, message = "record_exists", 409, "Cannot override an existing record."


class SessionSealed(ApiError):
    code, status, message = "session_sealed", 409, "The session is sealed."


class UploadInProgress(ApiError):
    code, status, message = "upload_in_progress", 409, "Another upload to this URL is in progress."


class UploadAlreadyCompleted(ApiError):
    code, status, message = "upload_already_completed", 409, "This upload URL has already been used."


class Conflict(ApiError):
    code, status, message = "conflict", 409, "The request conflicts with the current state."


class ArtifactExpired(ApiError):
    code, status, message = "artifact_expired", 410, "The artifact has expired."


class ArtifactAlreadyDeleted(ApiError):
    code, status, message = "artifact_already_deleted", 410, "The artifact has been deleted."


class UrlExpired(ApiError):
    code, status, message = "url_expired", 410, "This URL has expired."


class LinkExpired(ApiError):
    code, status, message = "link_expired", 410, "The link has expired."


class FileTooLarge(ApiError):
    code, status, message = "file_too_large", 413, "The body is larger than allowed."


class RateLimited(ApiError):
    code, status, message = "rate_limited", 429, "Too many requests."


class ServiceUnavailable(ApiError):
    code, status, message = "service_unavailable", 503, "The service is unavailable."


class InternalError(ApiError):
    pass


def refused_body(exc: BodyTooLarge | IncompleteBody, *, what: str) -> ApiError:
    """A body storage refused as it streamed: over `what`'s limit, or shorter
    than announced. Either way nothing was stored."""
    metrics.upload_aborted("too_large" if isinstance(exc, BodyTooLarge) else "incomplete")
    if isinstance(exc, BodyTooLarge):
        return FileTooLarge(f"{what} may be at most {exc.max_size} bytes")
    return InvalidRequest(f"the body ended after {exc.received} of {exc.expected} bytes; nothing was stored")


# Framework errors (unknown route, wrong method, body too large, a malformed
# request Werkzeug rejected) mapped onto the family.
_HTTP_STATUS_ERRORS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    413: FileTooLarge,
    429: RateLimited,
}


# The body shapes. /v8 answers the flat Turborepo shape with the nested copy
# turbo parses; /v1 the envelope; a request refused before its path was read
# (by gunicorn's parser) both at once, so either client finds its fields.
# Nx's document gives its errors as text/plain for the CLI to print; the plain
# HTTP cache (/cache/<tool>/) answers the flat shape.
CACHE_SHAPE = "v8"
ARTIFACT_SHAPE = "v1"
EITHER_SHAPE = "either"
NX_SHAPE = "nx"
NX_PREFIX = "/v1/cache/"
TOOLS_PREFIX = "/cache/"
RUSH_PREFIX = TOOLS_PREFIX + "rush/"


def error_body(error: ApiError, shape: str) -> dict:
    """The error's JSON body in one of the shapes above."""
    body = {"code": error.code, "message": error.message, **error.extra}
    if shape == CACHE_SHAPE:
        return {**body, "error": {"code": error.code, "message": error.message}}
    if shape == EITHER_SHAPE:
        return {**body, "error": {"code": error.code, "message": error.message, "status": error.status}}
    return {"error": {**body, "status": error.status}}


def _shape_of_request() -> str:
    path = request.path
    if path.startswith("/v8/") or path.startswith(TOOLS_PREFIX):
        return CACHE_SHAPE
    return NX_SHAPE if path.startswith(NX_PREFIX) else ARTIFACT_SHAPE


# The web console's pages (app/console/): people get an HTML page there;
# every other path keeps its JSON, unknown ones included.
CONSOLE_PREFIX = "/console/"


def _is_console_page() -> bool:
    return request.blueprint == "console" or request.path == "/" or request.path.startswith(CONSOLE_PREFIX)


def error_response(error: ApiError, *, cache_api: bool | None = None):
    """The error as a response: /v8's flat shape, the /v1 envelope, or in the
    console an HTML page, chosen by the request's path unless `cache_api` says
    (outside a request)."""
    if cache_api is None and _is_console_page():
        page = render_template("console/error.html", error=error)
        response = current_app.response_class(page, status=error.status, mimetype="text/html")
        return _with_headers(response, error)
    shape = _shape_of_request() if cache_api is None else (CACHE_SHAPE if cache_api else ARTIFACT_SHAPE)
    if shape == NX_SHAPE:
        return _nx_response(error)
    if cache_api is None and request.path.startswith(RUSH_PREFIX) and isinstance(error, RUSH_TRANSIENT):
        return _rush_response(error, request.method)
    response = jsonify(error_body(error, shape))
    response.status_code = error.status
    if error.status == 401 and cache_api is None and request.path.startswith(TOOLS_PREFIX):
        _challenge(response)
    return _with_headers(response, error)


def tool_error_response(error: ApiError, *, nx: bool = False, rush: bool = False):
    """An error of a build tool's read outside a request (api/cache_reads.py):
    Nx's text, Rush's 503 for a refusal of the moment, or the plain HTTP
    cache's flat JSON with a basic challenge."""
    if nx:
        return _nx_response(error)
    if rush and isinstance(error, RUSH_TRANSIENT):
        return _rush_response(error, "GET")
    response = error_response(error, cache_api=True)
    if error.status == 401:
        _challenge(response)
    return response


# Rush's plugin fails the build on any refused write, and on any failed read
# but a 503 (its one "transient" status). So a write refused for the moment
# (the rate, Redis down) is declined like a paused cache's (202, nothing
# stored), and such a read is a 503; each keeps its Retry-After.
RUSH_TRANSIENT = (RateLimited, ServiceUnavailable)


def declined_body(code: str, message: str) -> dict:
    """A Rush write accepted but not stored (202): why, in the error fields' names."""
    return {"stored": False, "code": code, "message": message}


def _rush_response(error: ApiError, method: str):
    if method in ("GET", "HEAD"):
        response = jsonify(error_body(error, CACHE_SHAPE))
        response.status_code = 503
    else:
        response = jsonify(declined_body(error.code, error.message))
        response.status_code = 202
    return _with_headers(response, error)


def _nx_response(error: ApiError):
    # Exactly text/plain: Nx refuses a 401 whose type has a charset parameter.
    return _with_headers(Response(error.message, status=error.status, content_type="text/plain"), error)


def _with_headers(response, error: ApiError):
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def _challenge(response) -> None:
    # A client that sends credentials only once challenged (HTTP basic) is told how.
    response.headers["WWW-Authenticate"] = 'Basic realm="Hoard"'


def unparsed_request_error(status: int, reason: str, detail: str) -> bytes:
    """The body answering a request the server refused before any route saw
    it (gunicorn's parser: a malformed line, oversized headers), in both
    shapes. 5xx answers carry the reason only: never describe internals."""
    error_class = _HTTP_STATUS_ERRORS.get(status) or (InternalError if status == 500 else InvalidRequest)
    error = error_class(f"{reason}: {detail}" if detail and status < 500 else reason)
    error.status = status
    return json.dumps(error_body(error, EITHER_SHAPE)).encode()


def _from_http_exception(exc: HTTPException) -> ApiError:
    status = exc.code or 500
    error_class = _HTTP_STATUS_ERRORS.get(status)
    if error_class is None:
        if status >= 500:
            return InternalError()
        # Any other client error keeps its status (416 for an unsatisfiable
        # Range, 411, 415...), named after Werkzeug's reason phrase.
        error = ApiError(exc.description)
        error.status = status
        error.code = re.sub(r"[^a-z0-9]+", "_", (exc.name or "error").lower()).strip("_")
    else:
        error = error_class()
    if error_class is MethodNotAllowed and getattr(exc, "valid_methods", None):
        error.headers["Allow"] = ", ".join(exc.valid_methods)
    if status == 416 and getattr(exc, "length", None) is not None:
        error.headers["Content-Range"] = f"{getattr(exc, 'units', 'bytes')} */{exc.length}"
    return error


def register_error_handlers(app: Flask) -> None:
    # Every handler rolls back: services commit what they mean to keep before
    # raising, and nothing a refused request left half-done may outlive it.
    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError):
        db.session.rollback()
        return error_response(error)

    @app.errorhandler(HTTPException)
    def handle_http_exception(exc: HTTPException):
        db.session.rollback()
        return error_response(_from_http_exception(exc))

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        # Redacted: a signed URL's path is its own credential.
        log.exception("unhandled error on %s %s", request.method, redact(request.path))
        db.session.rollback()
        return error_response(InternalError())
