"""sccache's WebDAV backend against Hoard's plain HTTP cache.

Debian's sccache (0.4.0~pre6) has no WebDAV backend at all, so this runs the
upstream release published on PyPI (pinned in requirements-dev.txt). Each
build runs in a fresh sccache server, whose statistics are that build's: the
cold one stores every compilation, a second tenant's key finds none of them,
and the first tenant's key is served every compilation by Hoard.
"""

import hashlib
import json
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import services_env
from tests.e2e.cache_clients import (
    LogWindow,
    clean_env,
    run,
    source_tree,
    stored_entries,
    tool_url,
    unknown_key,
)
from tests.live_server import BIN, free_port

SCCACHE_VERSION = "0.16.0"
SOURCES = {
    "twice.c": "int twice(int x) { return 2 * x; }\n",
    "main.c": "int twice(int x);\nint main(void) { return twice(21) - 42; }\n",
}
PREFIX = "/cache/sccache/"


@pytest.fixture(scope="module")
def sccache() -> Path:
    services_env.require_commands("gcc", what="the sccache end-to-end tests")
    binary = BIN / "sccache"
    if not binary.is_file():
        services_env.missing(f"{binary} not found (pip install -r requirements-dev.txt)")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    assert version.split() == ["sccache", SCCACHE_VERSION], version
    return binary


@pytest.fixture
def project(tmp_path) -> Path:
    return source_tree(tmp_path / "project", SOURCES)


def sccache_env(project: Path, webdav: dict[str, str]) -> dict[str, str]:
    """sccache configured only by `webdav` settings, its server on its own port."""
    home = project.parent / "sccache-home"
    home.mkdir(exist_ok=True)
    return clean_env(
        "SCCACHE_",
        "RUSTC_WRAPPER",
        SCCACHE_SERVER_PORT=str(free_port()),
        SCCACHE_DIR=str(home / "local"),
        SCCACHE_CONF=str(home / "no-config.toml"),
        SCCACHE_IDLE_TIMEOUT="0",
        SCCACHE_ERROR_LOG=str(home / "server.log"),
        SCCACHE_LOG="warn",
        **webdav,
    )


@contextmanager
def sccache_server(sccache: Path, project: Path, webdav: dict[str, str]):
    """A fresh sccache server; the environment that talks to it."""
    env = sccache_env(project, webdav)
    run([str(sccache), "--start-server"], cwd=project, env=env, timeout=60)
    try:
        yield env
    finally:
        run([str(sccache), "--stop-server"], cwd=project, env=env, timeout=60, check=False)


def build(sccache: Path, project: Path, webdav: dict[str, str]) -> dict:
    """Compile every source through sccache; the server's JSON statistics."""
    with sccache_server(sccache, project, webdav) as env:
        for name in SOURCES:
            (project / name).with_suffix(".o").unlink(missing_ok=True)
            run([str(sccache), "gcc", "-O1", "-c", name, "-o", Path(name).stem + ".o"], cwd=project, env=env)
        report = run([str(sccache), "--show-stats", "--stats-format=json"], cwd=project, env=env).stdout
    return json.loads(report)


def counts(report: dict, name: str) -> int:
    return sum(report["stats"][name]["counts"].values())


def object_digests(project: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(project.glob("*.o"))}


def webdav_settings(hoard, key: str, auth: str) -> dict[str, str]:
    if auth == "token":
        # The base URL as Hoard documents it, trailing slash included.
        return {"SCCACHE_WEBDAV_ENDPOINT": tool_url(hoard, "sccache"), "SCCACHE_WEBDAV_TOKEN": key}
    return {
        "SCCACHE_WEBDAV_ENDPOINT": tool_url(hoard, "sccache", slash=False),
        "SCCACHE_WEBDAV_USERNAME": "anyuser",
        "SCCACHE_WEBDAV_PASSWORD": key,
    }


@pytest.mark.parametrize("auth", ["token", "basic"])
def test_second_build_is_served_from_hoard(auth, sccache, hoard, new_tenant, project):
    owner, stranger = new_tenant(), new_tenant()
    compiles = len(SOURCES)

    window = LogWindow(hoard)
    cold = build(sccache, project, webdav_settings(hoard, owner.key, auth))
    assert cold["cache_location"].startswith("webdav"), cold["cache_location"]
    assert counts(cold, "cache_hits") == 0, cold
    assert counts(cold, "cache_misses") == compiles, cold
    assert cold["stats"]["cache_writes"] == compiles, cold
    assert cold["stats"]["cache_write_errors"] == cold["stats"]["cache_read_errors"] == 0, cold
    assert counts(cold, "cache_errors") == 0, cold
    # Its start-up check plus one entry per compilation, each answered 2xx.
    puts = window.requests("PUT", PREFIX, expected=compiles + 1)
    assert {status[0] for _, status in puts} == {"2"}, puts
    stored = {path for path, _ in puts if not path.endswith(".sccache_check")}
    assert len(stored) == compiles, puts
    built = object_digests(project)
    assert set(built) == {"twice.o", "main.o"}

    window = LogWindow(hoard)
    foreign = build(sccache, project, webdav_settings(hoard, stranger.key, auth))
    assert counts(foreign, "cache_hits") == 0, foreign
    assert counts(foreign, "cache_misses") == compiles, foreign
    assert foreign["stats"]["cache_write_errors"] == foreign["stats"]["cache_read_errors"] == 0, foreign
    lookups = window.requests("GET", PREFIX, expected=compiles + 1)
    assert {path: status for path, status in lookups if path in stored} == dict.fromkeys(stored, "404")

    warm = build(sccache, project, webdav_settings(hoard, owner.key, auth))
    assert counts(warm, "cache_hits") == compiles, warm
    assert counts(warm, "cache_misses") == 0, warm
    assert warm["stats"]["cache_read_errors"] == 0, warm
    assert object_digests(project) == built
    # Hoard keeps each entry once, whichever slashes the key came with.
    assert stored_entries(hoard, owner, "sccache") == compiles + 1


def test_an_unknown_key_stops_the_sccache_server_with_hoards_message(sccache, hoard, project):
    """sccache checks its storage when its server starts and refuses to start
    on a key Hoard refuses, printing Hoard's error."""
    window = LogWindow(hoard)
    env = sccache_env(project, webdav_settings(hoard, unknown_key(), "token"))
    started = run([str(sccache), "--start-server"], cwd=project, env=env, timeout=60, check=False)
    if started.returncode == 0:
        run([str(sccache), "--stop-server"], cwd=project, env=env, timeout=60, check=False)

    assert started.returncode != 0, started.stdout
    assert "A valid API key is required." in started.stdout, started.stdout
    window.settle()
    statuses = {
        status
        for method in ("GET", "HEAD", "PUT", "PROPFIND", "MKCOL")
        for status in window.statuses(method, PREFIX, expected=0)
    }
    assert statuses == {"401"}, statuses


def test_a_tool_turned_off_still_builds(sccache, hoard, new_tenant, project):
    """With sccache turned off for the tenant its start-up write check is
    refused, so sccache runs read-only: every compilation is a miss, built
    locally, and Hoard stores nothing."""
    owner = new_tenant()
    hoard.flask("tenants", "set-tool", owner.slug, "sccache", "off")

    window = LogWindow(hoard)
    off = build(sccache, project, webdav_settings(hoard, owner.key, "token"))

    assert set(object_digests(project)) == {"twice.o", "main.o"}
    assert counts(off, "cache_hits") == 0, off
    assert counts(off, "cache_misses") == len(SOURCES), off
    window.settle()
    # Its check creates the base collection first; refused, it writes nothing more.
    assert window.statuses("MKCOL", PREFIX, expected=0) == ["403"]
    assert window.requests("PUT", PREFIX, expected=0) == []
    assert set(window.statuses("GET", PREFIX, expected=0)) == {"404"}
    assert stored_entries(hoard, owner, "sccache") == 0


def test_a_hit_follows_hoards_redirect_to_the_object_store(sccache, s3_redirect_hoard, project):
    """On S3 storage with DOWNLOAD_MODE=redirect, Hoard answers sccache's
    GET with a presigned URL, and sccache fetches the entry from there."""
    hoard = s3_redirect_hoard
    owner = hoard.create_tenant("sccache-s3")
    cold = build(sccache, project, webdav_settings(hoard, owner.key, "token"))
    assert cold["stats"]["cache_writes"] == len(SOURCES), cold
    built = object_digests(project)

    window = LogWindow(hoard)
    warm = build(sccache, project, webdav_settings(hoard, owner.key, "token"))
    assert counts(warm, "cache_hits") == len(SOURCES), warm
    assert warm["stats"]["cache_read_errors"] == 0, warm
    entries = [
        status for path, status in window.requests("GET", PREFIX, expected=3) if "sccache_check" not in path
    ]
    assert entries == ["302"] * len(SOURCES), entries
    assert object_digests(project) == built
