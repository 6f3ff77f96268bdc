"""The peer Hoard is measured against: turborepo-remote-cache (Node, Fastify),
pinned, installed with npm into .cache/ on first use, run on a loopback port.

Read from its 2.12.0 source (dist/env.js, plugins/remote-cache/): settings
come from the environment; STORAGE_PATH is joined onto the OS temp dir unless
STORAGE_PATH_USE_TMP_FOLDER=false; static auth accepts any of the
comma-separated TURBO_TOKEN values; the team is `teamId ?? team ?? slug` from
the query, required on every artifact route, and is the storage prefix.
PUT bodies are parsed into one Buffer of at most BODY_LIMIT bytes (default
100 MiB), so a 1 GiB artifact needs BODY_LIMIT raised, and the server holds
all of it in memory. Local storage is fs-blob-store: no fsync, no temp file.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.turbo import npm_install_pinned  # noqa: E402
from tests.live_server import free_port, start_process, stop_process  # noqa: E402

PEER_PACKAGE = "turborepo-remote-cache"
PEER_VERSION = "2.12.0"
INSTALL_DIR = ROOT / ".cache" / f"{PEER_PACKAGE}-{PEER_VERSION}"
# The largest artifact Hoard accepts by default (CACHE_MAX_ARTIFACT_BYTES).
BODY_LIMIT = 2 * 1024**3


def package_dir(install_dir: Path = INSTALL_DIR) -> Path:
    return install_dir / "node_modules" / PEER_PACKAGE


def installed_version(install_dir: Path = INSTALL_DIR) -> str | None:
    try:
        manifest = json.loads((package_dir(install_dir) / "package.json").read_text())
    except (OSError, ValueError):
        return None
    if not (package_dir(install_dir) / "dist" / "cli.js").is_file():
        return None
    return manifest.get("version")


def install(install_dir: Path = INSTALL_DIR) -> Path:
    """The pinned peer's entry point, installed with npm on first use."""
    npm_install_pinned(
        install_dir, PEER_PACKAGE, PEER_VERSION, installed_version=installed_version, flags=("--omit=dev",)
    )
    return package_dir(install_dir) / "dist" / "cli.js"


@dataclass
class PeerServer:
    """turborepo-remote-cache under node, in its own session, logging to a file."""

    entry_point: Path
    var_dir: Path
    token: str
    env_overrides: dict = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict:
        # A clean environment: the peer reads TURBO_*, S3_* and STORAGE_* itself.
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.var_dir),
            "NODE_ENV": "production",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "TURBO_TOKEN": self.token,
            "STORAGE_PROVIDER": "local",
            "STORAGE_PATH": str(self.var_dir / "storage"),
            "STORAGE_PATH_USE_TMP_FOLDER": "false",
            "BODY_LIMIT": str(BODY_LIMIT),
            **{k: str(v) for k, v in self.env_overrides.items()},
        }

    def start(self) -> "PeerServer":
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.log_path = self.var_dir / "peer.log"
        # /v8/artifacts/status is the one route outside the peer's auth hook.
        self.process, self._log = start_process(
            ["node", str(self.entry_point)],
            cwd=self.var_dir,
            env=self.env,
            log_path=self.log_path,
            ready_url=f"{self.url}/v8/artifacts/status",
        )
        return self

    def stop(self) -> None:
        stop_process(self.process, getattr(self, "_log", None))

    def __enter__(self) -> "PeerServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
