"""Shared ground for the end-to-end tests of the real build-cache clients
(ccache, sccache, Bazel, Gradle, Nx, Rush) against a live Hoard.

What each client sends, and the settings that make it work, are recorded in
the client notes of issue 15; these helpers only run the clients and read
back what gunicorn logged.
"""

import json
import os
import re
import secrets
import string
import subprocess
import time
from pathlib import Path

import requests

from tests.live_server import HoardServer, Tenant


def source_tree(root: Path, sources: dict[str, str]) -> Path:
    """A directory holding the given files (name -> text)."""
    root.mkdir()
    for name, text in sources.items():
        (root / name).write_text(text)
    return root


def tool_url(hoard: HoardServer, tool: str, *, slash: bool = True) -> str:
    """The plain HTTP cache base URL of one tool, e.g. http://127.0.0.1:PORT/cache/ccache/."""
    return f"{hoard.url}/cache/{tool}" + ("/" if slash else "")


def unknown_key() -> str:
    """A well-formed API key that no tenant has."""
    alphabet = string.ascii_letters + string.digits
    return "ak_live_" + "".join(secrets.choice(alphabet) for _ in range(32))


def stored_entries(hoard: HoardServer, tenant: Tenant, tool: str) -> int:
    """How many entries Hoard holds for the tenant under the tool, from
    `flask tenants stats`."""
    return json.loads(hoard.flask("tenants", "stats", tenant.slug))["tools"][tool]["entries"]


def clean_env(*prefixes: str, **extra: str) -> dict[str, str]:
    """The caller's environment without any setting whose name starts with
    one of `prefixes` (a developer's own cache configuration stays out)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}
    env.update(extra)
    return env


def run(
    args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess:
    """Run a client, stdout and stderr together; fail with its output."""
    result = subprocess.run(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-6000:]}")
    return result


class LogWindow:
    """The requests gunicorn logs from now on: a worker writes its access
    line after the response, so a read waits briefly for `expected` lines."""

    def __init__(self, hoard: HoardServer) -> None:
        self.hoard = hoard
        self.start = hoard.log_path.stat().st_size

    def requests(
        self, method: str, prefix: str, *, expected: int = 1, timeout: float = 5, marker: str = ""
    ) -> list[tuple[str, str]]:
        """(path, status) of each `method` request under `prefix`, oldest
        first; with `marker`, only those whose query string holds it."""
        query = rf'\?[^ "]*{re.escape(marker)}[^ "]*' if marker else r'(?:\?[^ "]*)?'
        pattern = re.compile(rf'"{method} ({re.escape(prefix)}[^ ?"]*){query} HTTP/1\.[01]" (\d{{3}})')
        deadline = time.monotonic() + timeout
        while True:
            with open(self.hoard.log_path, "rb") as log:
                log.seek(self.start)
                found = pattern.findall(log.read().decode(errors="replace"))
            if len(found) >= expected or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def settle(self) -> None:
        """Wait until gunicorn has logged every request answered so far: a
        marked health check sent now is logged after them."""
        marker = secrets.token_hex(8)
        requests.get(f"{self.hoard.url}/health", params={"settle": marker}, timeout=10)
        self.requests("GET", "/health", expected=1, marker=marker)

    def statuses(self, method: str, prefix: str, *, expected: int = 1) -> list[str]:
        return [status for _, status in self.requests(method, prefix, expected=expected)]
