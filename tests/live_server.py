"""Hoard under real gunicorn, for end-to-end tests and benchmarks.

Migrates its database with `flask db upgrade`, manages tenants through the
real `flask` CLI, and serves on a free loopback port.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_process(
    command: list[str],
    *,
    cwd: Path,
    env: dict,
    log_path: Path,
    ready_url: str,
    ready_status: int = 200,
    timeout: float = 30,
) -> tuple[subprocess.Popen, BinaryIO]:
    """Start a server in its own process group, logging to a file, and wait
    until `ready_url` answers `ready_status`."""
    log = open(log_path, "ab")  # noqa: SIM115 - closed by stop_process()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.close()
            raise RuntimeError(f"{command[0]} exited: {log_path.read_text()[-2000:]}")
        try:
            if requests.get(ready_url, timeout=1).status_code == ready_status:
                return process, log
        except requests.RequestException:
            pass
        time.sleep(0.2)
    stop_process(process, log)
    raise RuntimeError(f"{command[0]} did not answer {ready_url} in {timeout:.0f} s")


def stop_process(process: subprocess.Popen | None, log: BinaryIO | None) -> None:
    """SIGINT the process group (gunicorn's quick shutdown: a test's server has
    no request left worth finishing), SIGKILL it if it lingers, close the log."""
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if log is not None:
        log.close()


@dataclass
class Tenant:
    slug: str
    id: str
    key: str


@dataclass
class HoardServer:
    var_dir: Path
    database_url: str | None = None
    # None: gunicorn.conf.py's default (one worker with in-process rate
    # limits, which refuse more; 2 x CPUs + 1 with Redis).
    workers: int | None = None
    threads: int | None = 8
    env_overrides: dict = field(default_factory=dict)
    port: int = 0
    # What /health answers once serving: 503 when a part is down on purpose.
    ready_status: int = 200
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict:
        env = {
            **os.environ,
            "FLASK_APP": "wsgi.py",
            "HOARD_VAR_DIR": str(self.var_dir),
            "STORAGE_LOCAL_ROOT": str(self.var_dir / "storage"),
            "HOARD_SECRET_KEY": "e2e-secret",
            "LOG_LEVEL": "WARNING",
            **{k: str(v) for k, v in self.env_overrides.items()},
        }
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        if self.threads is not None:
            # The environment, not --threads: the database pool is sized from it too.
            env["GUNICORN_THREADS"] = str(self.threads)
        return env

    def flask(self, *args: str) -> str:
        result = subprocess.run(
            [str(BIN / "flask"), *args], cwd=ROOT, env=self.env, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed: {result.stderr}{result.stdout}")
        return result.stdout

    def create_tenant(self, slug: str, *, plan: str = "pro") -> Tenant:
        out = self.flask("tenants", "create", slug, "--plan", plan, "--with-key")
        tenant_id = re.search(r"\((team_[A-Za-z0-9]+)\)", out).group(1)
        key = re.search(r"(ak_live_[A-Za-z0-9]{32})", out).group(1)
        return Tenant(slug=slug, id=tenant_id, key=key)

    def start(self) -> "HoardServer":
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.flask("db", "upgrade")
        self.port = self.port or free_port()
        self.log_path = self.var_dir / "gunicorn.log"
        self.process, self._log = start_process(
            [
                str(BIN / "gunicorn"),
                "-c",
                str(ROOT / "gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{self.port}",
                *(["--workers", str(self.workers)] if self.workers is not None else []),
                "wsgi:app",
            ],
            cwd=ROOT,
            env=self.env,
            log_path=self.log_path,
            ready_url=f"{self.url}/health",
            ready_status=self.ready_status,
        )
        return self

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> None:
        stop_process(self.process, getattr(self, "_log", None))

    def __enter__(self) -> "HoardServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
