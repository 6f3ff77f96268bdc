"""gunicorn settings for Hoard, overridable with GUNICORN_* style env via config.

gthread workers: uploads and downloads are long, I/O-bound requests. Threads
let one worker keep serving while others stream, without the monkey-patching
of gevent; the sync worker would hold a whole process per transfer. Downloads
leave through the WSGI file wrapper, which gunicorn sends with sendfile(2).
"""

import ctypes
import ctypes.util
import multiprocessing
import os
from pathlib import Path

from config import WORKER_THREADS, Config

bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# In-process rate-limit counts (memory://, the zero-config default) hold only
# within one process: the default is then one worker, and more are refused
# in on_starting() below.
IN_PROCESS_LIMITS = Config.RATELIMIT_ENABLED and Config.RATELIMIT_STORAGE_URI.startswith("memory://")
workers = int(
    os.environ.get("WEB_CONCURRENCY", 1 if IN_PROCESS_LIMITS else multiprocessing.cpu_count() * 2 + 1)
)
# gthread, with gunicorn's own errors answered in JSON (app/gunicorn_worker.py).
worker_class = "app.gunicorn_worker.JsonErrorWorker"
threads = WORKER_THREADS
# A 1 GiB upload over a slow CI link takes minutes; the timeout guards against
# hung workers, not slow clients (gthread's heartbeat runs while threads stream).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "300"))
graceful_timeout = 60
keepalive = 75
# Large headers (x-artifact-tag) are small in practice; keep gunicorn's limits.
limit_request_line = 8190
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
errorlog = "-"

# The access log: destination and format from config.py (ACCESS_LOG,
# ACCESS_LOG_FORMAT), and capability tokens in paths redacted.
accesslog = Config.ACCESS_LOG
if Config.ACCESS_LOG_FORMAT:
    access_log_format = Config.ACCESS_LOG_FORMAT
logger_class = "app.access_log.RedactingLogger"

# Metrics across workers (prometheus_client's multiprocess mode): each worker
# writes its counts to files in one directory and /metrics adds them up.
# prometheus_client takes that directory from PROMETHEUS_MULTIPROC_DIR, read
# from the environment when it is first imported and when each series is
# made; it has no other way to be told. gunicorn reads this file in the
# master before it loads the worker class (which imports the app, and with it
# prometheus_client) and before it forks a worker, so the value set here from
# config.py is the one every worker inherits. With metrics off it is removed,
# so a stray variable in the environment cannot switch the mode on.
METRICS_DIR = Config.METRICS_MULTIPROC_DIR if Config.METRICS_ENABLED and Config.METRICS_TOKEN else None
if METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR
else:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


# glibc's mallopt(3) parameters.
M_ARENA_MAX = -8
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024


def on_starting(server):
    pool = Config.SQLALCHEMY_ENGINE_OPTIONS
    if server.cfg.threads > pool["pool_size"] + pool["max_overflow"] - 1:
        # Threads that each hold a connection and wait for a second one would
        # wait on each other until the pool times out.
        raise SystemExit(
            f"Hoard: {server.cfg.threads} threads need at least {server.cfg.threads + 1} database "
            f"connections per worker; set GUNICORN_THREADS (not --threads) or raise DB_POOL_SIZE."
        )
    if IN_PROCESS_LIMITS and server.cfg.workers > 1:
        # Each worker would keep its own window: the documented limits would
        # hold per worker, not per tenant.
        raise SystemExit(
            f"Hoard: {server.cfg.workers} workers with RATELIMIT_STORAGE_URI=memory:// would not enforce "
            "the rate limits across processes. Set RATELIMIT_STORAGE_URI=redis://... (production), "
            "or run one worker (WEB_CONCURRENCY=1)."
        )
    if METRICS_DIR:
        # Files left by a previous server would be added to this one's counts
        # (and a recycled pid would continue a dead worker's file): start empty.
        directory = Path(METRICS_DIR)
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob("*.db"):
            leftover.unlink()
    # After one large transfer, workers stayed 30-45 MB above their idle size,
    # for two reasons in glibc's allocator. Each thread that allocates under
    # contention gets an arena of its own (up to 8 per CPU), and an arena keeps
    # what it freed: two arenas are enough here. And after the first large
    # buffer is freed, glibc raises its mmap threshold (up to 32 MiB), so later
    # transfer buffers come from the heap and stay there: a fixed threshold
    # returns anything from 4 MiB up to the OS when freed. Workers inherit
    # both; the MALLOC_* environment variables, when set, win. Other C
    # libraries have no mallopt.
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError):
        return
    if not os.environ.get("MALLOC_ARENA_MAX"):
        mallopt(M_ARENA_MAX, 2)
    if not os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def post_worker_init(worker):
    # Usage counters are batched in memory per worker; publish them even
    # when the worker goes quiet, and once more when it exits.
    from app.services.usage import start_background_flush

    start_background_flush(worker.wsgi)


def worker_exit(server, worker):
    from app.services.usage import flush_in

    flush_in(worker.wsgi)


def child_exit(server, worker):
    # A dead worker's counters stay in its file and keep counting toward the
    # sums (Prometheus sees no drop); what only a live process may report is
    # removed with it.
    if METRICS_DIR:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, METRICS_DIR)
