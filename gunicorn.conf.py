"""gunicorn settings for Hoard, overridable with GUNICORN_* style env via config.

gthread workers: uploads and downloads are long, I/O-bound requests. Threads
let one worker keep serving while others stream, without the monkey-patching
of gevent; the sync worker would hold a whole process per transfer. Downloads
leave through the WSGI file wrapper, which gunicorn sends with sendfile(2).
"""

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


def post_worker_init(worker):
    # Usage counters are batched in memory per worker; publish them even
    # when the worker goes quiet, and once more when it exits.
    from app.services.usage import start_background_flush

    start_background_flush(worker.wsgi)


def worker_exit(server, worker):
    from app.services.usage import flush_in

    flush_in(worker.wsgi)
