"""Prometheus instrumentation: what each request, cache lookup and transfer adds.

The series are prometheus_client's module-level metrics. Under gunicorn they
live in per-worker files (multiprocess mode, set up by gunicorn.conf.py) and
/metrics adds them up; under `flask run` and in tests, in this process.

`RequestMetrics`, the outermost WSGI middleware, times and counts every
request (the cache reads answered before Flask included) and, while the
request runs, holds its API label in a context variable: the recording
functions below read it, so they count nothing outside a request, nor when
the middleware is not installed (METRICS off, or no METRICS_TOKEN).

Every label has a bounded set of values: the API and the route come from
fixed tables and Flask's URL rules, never from a raw path; methods outside
the HTTP set are "other"; hashes, ids and tenants are never labels here.
"""

from contextvars import ContextVar
from time import perf_counter

from flask import Flask, request
from prometheus_client import Counter, Histogram

EXTENSION = "hoard_metrics"
# Where the route of a request answered outside Flask's routing is left for
# the middleware (app/api/cache_reads.py), and where Flask's rule is.
ROUTE_KEY = "hoard.metrics.route"
UNMATCHED_ROUTE = "unmatched"

# The API a path belongs to, by prefix, first match wins: add a line for a new
# API (above any shorter prefix of it; a build tool's under /cache/<tool>/ as
# ("/cache/<tool>/", "<tool>")). Paths under none (health, the OpenAPI
# document) are "other". The labels are these fixed names, never the path.
API_PREFIXES: tuple[tuple[str, str], ...] = (
    ("/v8/", "v8"),
    ("/v1/cache/", "nx"),  # Nx's self-hosted remote cache API
    ("/cache/", "cache"),
    ("/v1/uploads/", "public"),
    ("/v1/blobs/", "public"),
    ("/dl/", "public"),
    ("/v1/", "v1"),
    ("/metrics", "metrics"),
)
OTHER_API = "other"
METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"})

# Seconds to the response's status and headers: a streamed body (a download
# sent with sendfile) is not included. From a cache hit to a slow upload.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

# Each metric has labels, so no value (and, in multiprocess mode, no file) is
# made at import: the gunicorn master imports this module before
# gunicorn.conf.py's on_starting has created the directory.
REQUESTS = Counter(
    "hoard_http_requests_total",
    "HTTP requests answered, by API, route, method and status class.",
    ("api", "route", "method", "status"),
)
REQUEST_DURATION = Histogram(
    "hoard_http_request_duration_seconds",
    "Time to answer an HTTP request (to its headers; streamed bodies excluded).",
    ("api", "route", "method"),
    buckets=DURATION_BUCKETS,
)
CACHE_LOOKUPS = Counter(
    "hoard_cache_lookups_total",
    "Build-cache lookups (GET and HEAD of an artifact), by API, method and result (hit/miss).",
    ("api", "method", "result"),
)
BYTES_UPLOADED = Counter(
    "hoard_uploaded_bytes_total", "Bytes received and stored through Hoard, by API.", ("api",)
)
BYTES_SERVED = Counter(
    "hoard_served_bytes_total",
    "Bytes of response bodies Hoard sent (or had nginx send), by API; redirects to S3 excluded.",
    ("api",),
)
RATE_LIMITED = Counter(
    "hoard_rate_limited_requests_total",
    "Requests refused by the rate limits (429), by API and limit (tenant, anonymous, public).",
    ("api", "limit"),
)
UPLOADS_ABORTED = Counter(
    "hoard_uploads_aborted_total",
    "Uploads that ended before their bytes were stored, by API and reason (too_large, over_quota: "
    "refused as the body streamed; incomplete, disconnected: the body stopped short).",
    ("api", "reason"),
)

_api: ContextVar[str] = ContextVar("hoard_metrics_api")


def api_for_path(path: str) -> str:
    for prefix, api in API_PREFIXES:
        if path.startswith(prefix):
            return api
    return OTHER_API


class RequestMetrics:
    """WSGI middleware: counts and times each request under its API and route."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app
        # (api, route, method, status class) -> the two series' children:
        # prometheus_client's labels() takes a lock and checks its arguments
        # on every call; a dict read does not.
        self._series: dict[tuple[str, str, str, str], tuple] = {}

    def __call__(self, environ, start_response):
        started = perf_counter()
        api = api_for_path(environ.get("PATH_INFO", ""))
        token = _api.set(api)
        statuses = []

        def capture(status, headers, exc_info=None):
            statuses.append(status)
            return start_response(status, headers, exc_info)

        try:
            return self.wsgi_app(environ, capture)
        finally:
            _api.reset(token)
            # An exception leaving the app becomes the server's 500.
            status = statuses[-1][0] + "xx" if statuses else "5xx"
            self._record(environ, api, status, perf_counter() - started)

    def _record(self, environ: dict, api: str, status: str, seconds: float) -> None:
        method = environ["REQUEST_METHOD"]
        if method not in METHODS:
            method = "other"
        key = (api, environ.get(ROUTE_KEY) or UNMATCHED_ROUTE, method, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (REQUESTS.labels(*key), REQUEST_DURATION.labels(*key[:3]))
        series[0].inc()
        series[1].observe(seconds)


def _remember_route(exc: BaseException | None) -> None:
    # Flask's rule (e.g. /v1/artifacts/<artifact_id>) for the middleware,
    # which runs after the request context, and request.url_rule, are gone.
    rule = request.url_rule
    if rule is not None:
        request.environ[ROUTE_KEY] = rule.rule


def init_app(app: Flask) -> None:
    """Install the instrumentation when metrics are on and can be read."""
    enabled = bool(app.config["METRICS_ENABLED"] and app.config["METRICS_TOKEN"])
    app.extensions[EXTENSION] = enabled
    if enabled:
        app.teardown_request(_remember_route)
        app.wsgi_app = RequestMetrics(app.wsgi_app)


def enabled(app: Flask) -> bool:
    return app.extensions.get(EXTENSION, False)


# (metric, label values) -> its child, for the same reason as the
# middleware's table; bounded as the label values are.
_children: dict[tuple, object] = {}


def _inc(metric, labels: tuple[str, ...], amount: float = 1) -> None:
    child = _children.get((metric, labels))
    if child is None:
        child = _children[(metric, labels)] = metric.labels(*labels)
    child.inc(amount)


def cache_lookup(method: str, *, hit: bool) -> None:
    api = _api.get(None)
    if api is not None:
        _inc(CACHE_LOOKUPS, (api, method if method in METHODS else "other", "hit" if hit else "miss"))


def bytes_served(size: int) -> None:
    api = _api.get(None)
    if api is not None and size > 0:
        _inc(BYTES_SERVED, (api,), size)


def bytes_uploaded(size: int) -> None:
    api = _api.get(None)
    if api is not None and size > 0:
        _inc(BYTES_UPLOADED, (api,), size)


def rate_limited(limit: str) -> None:
    api = _api.get(None)
    if api is not None:
        _inc(RATE_LIMITED, (api, limit))


def upload_aborted(reason: str) -> None:
    api = _api.get(None)
    if api is not None:
        _inc(UPLOADS_ABORTED, (api, reason))
