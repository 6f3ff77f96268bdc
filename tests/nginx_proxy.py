"""The real nginx in front of a HoardServer, configured by deploy/nginx.conf.

The shipped file is used as it is, with only its addresses and storage path
pointed at the test's own; nginx is installed with apt when missing.
"""

import shutil
import subprocess
import time
from pathlib import Path

import requests

from tests import services_env
from tests.live_server import ROOT, free_port

NGINX_CONF = ROOT / "deploy" / "nginx.conf"


def ensure_nginx() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if path:
        return path
    install = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "nginx-light"], capture_output=True, text=True
    )
    if install.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        install = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "nginx-light"], capture_output=True, text=True
        )
    path = shutil.which("nginx") or "/usr/sbin/nginx"
    if install.returncode != 0 or not Path(path).exists():
        services_env.missing(f"nginx could not be installed: {install.stderr[-500:]}")
    return path


class NginxProxy:
    def __init__(self, upstream_port: int, storage_root: Path, work_dir: Path):
        self.upstream_port = upstream_port
        self.storage_root = storage_root
        self.work_dir = work_dir
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _render(self) -> Path:
        site = NGINX_CONF.read_text()
        for shipped, local in (
            ("server 127.0.0.1:8000;", f"server 127.0.0.1:{self.upstream_port};"),
            ("listen 80;", f"listen 127.0.0.1:{self.port};"),
            ("/var/lib/hoard/storage/", f"{self.storage_root}/"),
        ):
            assert shipped in site, f"deploy/nginx.conf no longer contains {shipped!r}"
            site = site.replace(shipped, local)
        temp = self.work_dir / "temp"
        temp.mkdir(parents=True, exist_ok=True)
        main = f"""
daemon off;
# pytest's temporary folders are private to their owner (root here).
user root;
worker_processes 1;
pid {self.work_dir}/nginx.pid;
error_log {self.work_dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {self.work_dir}/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    sendfile on;
    default_type application/octet-stream;
{site}
}}
"""
        path = self.work_dir / "nginx.conf"
        path.write_text(main)
        return path

    def start(self) -> "NginxProxy":
        binary = ensure_nginx()
        config = self._render()
        check = subprocess.run([binary, "-t", "-c", str(config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen(
            [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"nginx did not come up: {(self.work_dir / 'error.log').read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def __enter__(self) -> "NginxProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
