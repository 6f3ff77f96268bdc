"""The serving stack's own ceiling for small requests.

Flask under gunicorn with Hoard's gunicorn.conf.py settings (worker class,
workers, threads, keep-alive, access log), one view answering HEAD and GET of
a cache artifact with 1 KiB from memory: no key lookup, no database, no rate
limit, no storage. Whatever Hoard does per request comes on top of this, so
Hoard's small-request rates are also shown as a share of this server's.
"""

import runpy
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask, Response

from tests.live_server import BIN, free_port, start_process, stop_process

ROOT = Path(__file__).resolve().parent.parent
BODY = bytes(1024)
# gunicorn.conf.py's settings and their command-line flags; not its hooks,
# which start Hoard's usage flusher.
SETTINGS = {
    "worker_class": "--worker-class",
    "workers": "--workers",
    "threads": "--threads",
    "timeout": "--timeout",
    "graceful_timeout": "--graceful-timeout",
    "keepalive": "--keep-alive",
    "limit_request_line": "--limit-request-line",
    "accesslog": "--access-logfile",
    "errorlog": "--error-logfile",
    "logger_class": "--logger-class",
}

app = Flask(__name__)


@app.get("/health")
def health():
    return {"status": "ok"}


@app.route("/v8/artifacts/<artifact_hash>", methods=["GET", "HEAD"])
def artifact(artifact_hash: str):
    return Response(BODY, content_type="application/octet-stream", headers={"x-artifact-duration": "0"})


def gunicorn_arguments(workers: int, threads: int) -> list[str]:
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    settings.update(workers=workers, threads=threads)
    arguments = []
    for name, flag in SETTINGS.items():
        arguments += [flag, str(settings[name])]
    return arguments


@dataclass
class FloorServer:
    log_dir: Path
    workers: int
    threads: int
    port: int = field(default_factory=free_port)

    def __enter__(self) -> "FloorServer":
        self.process, self._log = start_process(
            [
                str(BIN / "gunicorn"),
                "-c",
                "/dev/null",  # not ./gunicorn.conf.py: its arguments come from gunicorn_arguments()
                *gunicorn_arguments(self.workers, self.threads),
                "--bind",
                f"127.0.0.1:{self.port}",
                "bench.floor:app",
            ],
            cwd=ROOT,
            env=None,
            log_path=self.log_dir / "floor.log",
            ready_url=f"http://127.0.0.1:{self.port}/health",
        )
        return self

    def __exit__(self, *exc) -> None:
        stop_process(self.process, self._log)
