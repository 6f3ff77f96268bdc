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

bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
# gthread, with gunicorn's own errors answered in JSON (app/gunicorn_worker.py).
worker_class = "app.gunicorn_worker.JsonErrorWorker"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# A 1 GiB upload over a slow CI link takes minutes; the timeout guards against
# hung workers, not slow clients (gthread's heartbeat runs while threads stream).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "300"))
graceful_timeout = 60
keepalive = 75
# Large headers (x-artifact-tag) are small in practice; keep gunicorn's limits.
limit_request_line = 8190
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
errorlog = "-"


# glibc's mallopt(3) parameter for the number of malloc arenas.
M_ARENA_MAX = -8


def on_starting(server):
    # glibc gives each thread that allocates under contention an arena of its
    # own, up to 8 per CPU, and an arena keeps what a large transfer freed:
    # with 8 threads and S3 part uploads, workers stayed 30-45 MB larger after
    # one big artifact. Two arenas keep them near their idle size, at no
    # measurable cost in throughput. Workers inherit the setting; an operator's
    # MALLOC_ARENA_MAX wins, and other C libraries have no such call.
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_ARENA_MAX, 2)


def post_worker_init(worker):
    # Usage counters are batched in memory per worker; publish them even
    # when the worker goes quiet, and once more when it exits.
    from app.services.usage import start_background_flush

    start_background_flush(worker.wsgi)


def worker_exit(server, worker):
    from app.services.usage import flush_in

    flush_in(worker.wsgi)
