"""HEAD and GET of /v8/artifacts/<hash> and of the plain HTTP cache's
/cache/<tool>/<key>, answered ahead of Flask's request machinery.

turbo asks for every task's artifact before it runs the task, so these are
most of a cache's requests and most of them are small. They are answered here
with the functions the Flask routes use — the bearer rule (auth), the limiter
(ratelimit), the cache rules (services.cache), the error table (errors), the
download helpers (responses) and the request counter (usage) — but without a
request context, URL routing or hooks, and with the key, its team and the
entry read in one prebuilt statement on a pooled connection. Flask's URL map
keeps the GET/HEAD rule (for a 405's Allow and url_for); its view calls the
same answer(), so a request answers alike whichever reaches it.
"""

import logging
from functools import partial
from urllib.parse import parse_qs

from flask import Flask
from werkzeug import Response

from .. import auth, metrics
from ..errors import (
    NX_PREFIX,
    TOOLS_PREFIX,
    ApiError,
    InternalError,
    Unauthorized,
    error_response,
    tool_error_response,
)
from ..extensions import db
from ..headers import security_headers
from ..ratelimit import rate_limits
from ..services import cache, tool_cache, usage
from . import responses

log = logging.getLogger(__name__)

PREFIX = "/v8/artifacts/"
# Under PREFIX, what Flask routes itself: the status, and the bare prefix
# (the POST-only query route, whose 405 Flask writes).
NOT_ARTIFACTS = frozenset({"status", ""})
# The Flask rule of these reads (api/cache_v8.py), so that the metrics label
# them alike whichever way they are answered.
ROUTE = "/v8/artifacts/<path:artifact_hash>"
NX_ROUTE = "/v1/cache/<path:artifact_hash>"  # api/cache_nx.py
TOOL_ROUTE = "/cache/<tool>/<keypath:key>"  # api/cache_http.py
READ_METHODS = frozenset({"GET", "HEAD"})
ENTRY_HEADERS = (
    ("x-artifact-tag", "tag"),
    ("x-artifact-sha", "git_sha"),
    ("x-artifact-dirty-hash", "dirty_hash"),
)


class CacheReads:
    """WSGI middleware: cache artifact reads here, everything else to `wsgi_app`."""

    def __init__(self, app: Flask, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if (
            environ["REQUEST_METHOD"] in READ_METHODS
            and path.startswith(PREFIX)
            and path[len(PREFIX) :] not in NOT_ARTIFACTS
        ):
            environ[metrics.ROUTE_KEY] = ROUTE
            with self.app.app_context():
                response = answer(environ, path[len(PREFIX) :])
            return response(environ, start_response)
        # The build tools' reads, answered alike: the plain HTTP cache's
        # /cache/<tool>/<key> and Nx's /v1/cache/<hash>.
        if environ["REQUEST_METHOD"] in READ_METHODS and path.startswith((TOOLS_PREFIX, NX_PREFIX)):
            if path.startswith(NX_PREFIX):
                tool, key = tool_cache.NX, path[len(NX_PREFIX) :]
                environ[metrics.ROUTE_KEY] = NX_ROUTE
            else:
                tool, _, key = path[len(TOOLS_PREFIX) :].partition("/")
                environ[metrics.ROUTE_KEY] = TOOL_ROUTE
            with self.app.app_context():
                response = answer_tool(environ, tool, key)
            return response(environ, start_response)
        return self.wsgi_app(environ, start_response)


def answer(environ: dict, artifact_hash: str) -> Response:
    """The response to one artifact read, never an exception."""

    def find(connection, digest):
        return cache.find_read(connection, key_digest=digest, artifact_hash=artifact_hash)

    def respond(connection, read, digest):
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        found = cache.open_read(
            connection,
            read,
            artifact_hash,
            key_digest=digest,
            team_id=_first(query, "teamId"),
            slug=_first(query, "slug"),
            with_body=environ["REQUEST_METHOD"] == "GET",
        )
        return _download_response(environ, found)

    api_key = auth.bearer_key(environ.get("HTTP_AUTHORIZATION"))
    return _answer(environ, api_key, find, respond, partial(error_response, cache_api=True))


def answer_tool(environ: dict, tool: str, key: str) -> Response:
    """The response to one read of a build tool's entry (Nx's included),
    never an exception."""

    def find(connection, digest):
        return tool_cache.find_read(connection, key_digest=digest, tool=tool, key=key)

    def respond(connection, read, digest):
        with_body = environ["REQUEST_METHOD"] == "GET"
        found = tool_cache.open_read(connection, read, tool, key, key_digest=digest, with_body=with_body)
        content_type = "application/octet-stream"
        return responses.send_download(found.download, content_type=content_type, environ=environ)

    api_key = auth.presented_key(environ.get("HTTP_AUTHORIZATION"))
    render_error = partial(tool_error_response, nx=tool == tool_cache.NX, rush=tool == tool_cache.RUSH)
    return _answer(environ, api_key, find, respond, render_error)


def _answer(environ: dict, api_key: str | None, find, respond, render_error) -> Response:
    """Authenticate, charge the limit, look up in one statement, respond;
    every error in the API's shape."""
    tenant_id = None
    outcome = None
    try:
        with db.engine.connect() as connection:
            # Reads need no transaction (see app/transactions.py).
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            digest = auth.key_digest(api_key) if api_key is not None else None
            read = find(connection, digest) if digest is not None else None
            limits = rate_limits()
            if read is not None:
                tenant_id = read.team.id
                outcome = limits.charge_tenant(tenant_id)
            else:
                outcome = limits.charge_anonymous(environ.get("REMOTE_ADDR"))
            if outcome is not None and not outcome.allowed:
                raise outcome.refusal()
            if read is None:
                raise Unauthorized()
            response = respond(connection, read, digest)
    except ApiError as error:
        response = render_error(error)
    except Exception:
        log.exception("unhandled error on %s %s", environ["REQUEST_METHOD"], environ.get("PATH_INFO"))
        response = render_error(InternalError())
    if outcome is not None:
        for name, value in outcome.headers():
            response.headers[name] = value
    for name, value in security_headers(authenticated=tenant_id is not None, uploaded_content=True):
        response.headers[name] = value
    if tenant_id is not None:
        usage.count_request(tenant_id)
        usage.key_used(digest)
    usage.flush_if_due()
    return response


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _download_response(environ: dict, found: cache.CacheDownload) -> Response:
    entry = found.entry
    headers = {"x-artifact-duration": str(entry.duration_ms)}
    for header, column in ENTRY_HEADERS:
        if value := getattr(entry, column):
            headers[header] = value
    return responses.send_download(
        found.download, content_type="application/octet-stream", headers=headers, environ=environ
    )
