"""Hoard configuration: every setting is read here, once, from the environment.

The defaults run with zero configuration: SQLite and local storage under ./var,
an in-process rate limiter. Production sets DATABASE_URL, STORAGE_BACKEND=s3
(with S3_BUCKET and friends) and RATELIMIT_STORAGE_URI=redis://...
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
VAR_DIR = Path(os.environ.get("HOARD_VAR_DIR", BASE_DIR / "var"))

GiB = 1024**3
MB = 1000**2


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def _float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'hoard.db'}"
    # PaaS providers hand out postgres:// URLs; SQLAlchemy wants the driver named.
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://") :]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _access_log() -> str | None:
    value = os.environ.get("ACCESS_LOG") or "-"
    return None if value.strip().lower() in ("off", "none", "false", "0") else value


# gunicorn's threads per worker (gunicorn.conf.py); the database pool is sized from it.
WORKER_THREADS = _int("GUNICORN_THREADS", 8)


class Config:
    # Keys the URL tokens (app/signing.py). Unset, a key is generated on first
    # use and kept in SECRET_KEY_FILE, so every worker process on this machine
    # signs and verifies URLs alike.
    SECRET_KEY = os.environ.get("HOARD_SECRET_KEY") or None
    SECRET_KEY_FILE = str(VAR_DIR / "secret_key")
    VERSION = "0.1.0"

    SQLALCHEMY_DATABASE_URI = _database_url()
    # pre-ping costs a round trip on every request; recycling connections
    # covers the usual cause of dead ones (idle timeouts in proxies/servers).
    SQLALCHEMY_ENGINE_OPTIONS = {
        "pool_pre_ping": _bool("DB_POOL_PRE_PING", False),
        "pool_recycle": _int("DB_POOL_RECYCLE_SECONDS", 1800),
        # One connection per thread and one more: at most 9 per worker, 45 for
        # the default 5 workers, so two servers (or a rolling deploy) fit
        # PostgreSQL's default 100. A thread holds one connection and, for a
        # moment, a second (an upload's lease, the usage flush): with one
        # more than the threads, some thread can always finish its moment.
        "pool_size": _int("DB_POOL_SIZE", WORKER_THREADS),
        "max_overflow": _int("DB_MAX_OVERFLOW", 1),
    }
    MIGRATIONS_DIR = str(BASE_DIR / "migrations")

    # Storage: "local" (files under STORAGE_LOCAL_ROOT) or "s3".
    STORAGE_BACKEND = os.environ.get("STORAGE_BACKEND", "local")
    STORAGE_LOCAL_ROOT = os.environ.get("STORAGE_LOCAL_ROOT", str(VAR_DIR / "storage"))
    S3_BUCKET = os.environ.get("S3_BUCKET", "hoard")
    S3_ENDPOINT_URL = os.environ.get("S3_ENDPOINT_URL") or None
    S3_REGION = os.environ.get("S3_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    # S3's minimum, as the AWS SDK for JavaScript uses: an upload holds
    # PARTS_IN_FLIGHT + 1 parts in memory, and a worker serves many at once.
    S3_PART_SIZE = _int("S3_PART_SIZE", 5 * 1024 * 1024)
    # How long one S3 request waits to connect, and for each read, before it
    # is retried (S3_MAX_ATTEMPTS in all). botocore's 60 s to connect and 5
    # attempts would let an unreachable store hold a thread for minutes; the
    # read keeps its 60 s, which a large server-side copy may need.
    S3_CONNECT_TIMEOUT_SECONDS = _float("S3_CONNECT_TIMEOUT_SECONDS", 5.0)
    S3_READ_TIMEOUT_SECONDS = _float("S3_READ_TIMEOUT_SECONDS", 60.0)
    S3_MAX_ATTEMPTS = _int("S3_MAX_ATTEMPTS", 3)

    # How downloads leave the server: "sendfile" (the WSGI file wrapper, which
    # gunicorn turns into sendfile(2)), "x-accel" (nginx serves the file), or
    # "redirect" (S3 only: a short-lived presigned GET).
    DOWNLOAD_MODE = os.environ.get("DOWNLOAD_MODE", "sendfile")
    X_ACCEL_PREFIX = os.environ.get("X_ACCEL_PREFIX", "/_hoard_storage/")

    # Size limits (bytes).
    CACHE_MAX_ARTIFACT_BYTES = _int("CACHE_MAX_ARTIFACT_BYTES", 2 * GiB)
    MULTIPART_MAX_BYTES = _int("MULTIPART_MAX_BYTES", 500 * MB)
    JSON_UPLOAD_MAX_BYTES = _int("JSON_UPLOAD_MAX_BYTES", 10 * MB)
    PRESIGNED_MAX_BYTES = _int("PRESIGNED_MAX_BYTES", 5 * GiB)
    # Werkzeug parses form fields in memory; files stream to temp files. The
    # fields are small (metadata is at most 8 KB), but Werkzeug applies this
    # limit to its whole parse buffer, which holds up to one 64 KiB read of
    # file data: it must stay well above that.
    MAX_FORM_MEMORY_SIZE = _int("MAX_FORM_MEMORY_SIZE", 1024 * 1024)

    # Where links and signed URLs point; derived from the request when unset.
    PUBLIC_BASE_URL = (os.environ.get("PUBLIC_BASE_URL") or "").rstrip("/") or None
    SIGNED_URL_TTL_SECONDS = _int("SIGNED_URL_TTL_SECONDS", 3600)
    # Upload integrity and liveness (issue 12): the life of the presigned S3
    # GET a signed download URL or cache read redirects to (DOWNLOAD_MODE=
    # redirect), and how often an upload in flight renews its lease (gc takes
    # an upload whose lease is LEASE_MISSED_BEATS beats old for dead).
    PRESIGNED_REDIRECT_SECONDS = _int("PRESIGNED_REDIRECT_SECONDS", 60)
    # The life of a presigned upload URL (POST /v1/artifacts/upload-url),
    # S3's or Hoard's own: how long a reservation waits for its bytes.
    UPLOAD_URL_TTL_SECONDS = _int("UPLOAD_URL_TTL_SECONDS", 3600)
    UPLOAD_HEARTBEAT_SECONDS = _int("UPLOAD_HEARTBEAT_SECONDS", 10)
    CACHE_READ_TOUCH_SECONDS = _int("CACHE_READ_TOUCH_SECONDS", 3600)

    # Rate limits, per tenant, shared by /v1 and /v8.
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_STRATEGY = os.environ.get("RATELIMIT_STRATEGY", "moving-window")
    RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
    # How long a request waits on Redis to connect or answer before it is a
    # 503: a Redis that stops answering (not one that refuses) must not hold
    # every thread until the kernel gives up on the connection.
    RATELIMIT_REDIS_TIMEOUT_SECONDS = _float("RATELIMIT_REDIS_TIMEOUT_SECONDS", 2.0)
    RATELIMIT_HEADERS_ENABLED = True
    RATE_LIMIT_SUSTAINED = _int("RATE_LIMIT_SUSTAINED", 100)
    RATE_LIMIT_BURST = _int("RATE_LIMIT_BURST", 200)
    RATE_LIMIT_ANONYMOUS = os.environ.get("RATE_LIMIT_ANONYMOUS", "20 per second")
    RATE_LIMIT_PUBLIC = os.environ.get("RATE_LIMIT_PUBLIC", "50 per second")

    # The web console (/): how long a sign-in lasts before the person signs
    # in again, whatever they do meanwhile.
    CONSOLE_SESSION_SECONDS = _int("CONSOLE_SESSION_SECONDS", 8 * 3600)
    # The console's forms are a few fields: a larger body is refused before
    # any of it is read (form parsing would otherwise hold it all in memory).
    CONSOLE_MAX_FORM_BYTES = _int("CONSOLE_MAX_FORM_BYTES", 64 * 1024)

    # Proxies in front of Hoard whose X-Forwarded-* headers are trusted.
    TRUSTED_PROXY_COUNT = _int("TRUSTED_PROXY_COUNT", 0)

    # Without PUBLIC_BASE_URL, links and signed URLs are built from the
    # request's Host, which is believed only when it names this server:
    # loopback, this machine's hostname, the address gunicorn is bound to,
    # or one of these names (comma-separated; ".example.com" also matches its
    # subdomains, "*" any name at all).
    ALLOWED_HOSTS = tuple(
        name.strip().lower() for name in os.environ.get("ALLOWED_HOSTS", "").split(",") if name.strip()
    )

    # Slow clients (app/gunicorn_worker.py); 0 turns a limit off. A thread
    # that reads or writes a request waits this long for the client to move,
    # and a request's line and headers must arrive within the header timeout
    # (they are read without a thread).
    CLIENT_IDLE_TIMEOUT_SECONDS = _int("CLIENT_IDLE_TIMEOUT_SECONDS", 30)
    CLIENT_HEADER_TIMEOUT_SECONDS = _int("CLIENT_HEADER_TIMEOUT_SECONDS", 20)
    # Per client address and worker process. Peers trusted as proxies
    # (FORWARDED_ALLOW_IPS) speak for many clients and are not limited.
    MAX_CONNECTIONS_PER_ADDRESS = _int("MAX_CONNECTIONS_PER_ADDRESS", 64)
    MAX_THREADS_PER_ADDRESS = _int("MAX_THREADS_PER_ADDRESS", 4)

    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")

    # Prometheus metrics (app/metrics.py, GET /metrics). METRICS turns the
    # instrumentation on or off; /metrics answers only with METRICS_TOKEN set
    # (a bearer token, unset: 404), and without it nothing is counted either.
    METRICS_ENABLED = _bool("METRICS", True)
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN") or None
    # Where gunicorn's workers keep their counts (prometheus_client's
    # multiprocess mode); gunicorn.conf.py creates and empties it at start.
    METRICS_MULTIPROC_DIR = os.environ.get("METRICS_MULTIPROC_DIR") or str(VAR_DIR / "metrics")
    # Storage per tenant carries a tenant label only while there are at most
    # this many tenants: past it, only the totals are exported, so a large
    # installation cannot blow up the number of series. 0: totals only.
    METRICS_TENANT_LABEL_LIMIT = _int("METRICS_TENANT_LABEL_LIMIT", 100)

    # gunicorn's access log, read by gunicorn.conf.py: "-" (stdout), a file
    # path, or "off" when something in front (nginx) logs every request
    # already: writing the line costs 8-13% of a small request. The format is
    # gunicorn's access_log_format; unset keeps gunicorn's default.
    ACCESS_LOG = _access_log()
    ACCESS_LOG_FORMAT = os.environ.get("ACCESS_LOG_FORMAT") or None
