"""Rush (npm, pinned) with its HTTP build cache plugin on Hoard.

@rushstack/rush-http-build-cache-plugin is one of Rush's built-in plugins:
rush-lib depends on it at Rush's own version and loads it when
build-cache.json names the "http" provider. RUSH_BUILD_CACHE_CREDENTIAL is
sent verbatim as the Authorization header.

The cold build misses and stores; after the local build cache and the
outputs are wiped, a second tenant's key finds nothing, and the first
tenant's key gets a "Build cache hit." from Hoard, as Rush reports it.
"""

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import services_env
from tests.e2e import turbo
from tests.e2e.cache_clients import LogWindow, clean_env, run, stored_entries, tool_url
from tests.live_server import HoardServer, free_port

RUSH_VERSION = "5.179.0"
PNPM_VERSION = "9.15.9"
INSTALL_DIR = turbo.ROOT / ".cache" / f"rush-{RUSH_VERSION}"
# Rush keeps the package manager it installs here (~/.rush by default).
GLOBAL_FOLDER = turbo.ROOT / ".cache" / "rush-global"
PREFIX = "/cache/rush/"
# Rush replays a restored operation's log, so the build notes each real run
# in a file outside the repo.
BUILD_JS = """\
const fs = require("fs");
fs.appendFileSync("../../../runs.log", "lib\\n");
const crypto = require("crypto");
const body = crypto.createHash("sha256").update("hoard-rush").digest("hex").repeat(1000);
fs.mkdirSync("dist", { recursive: true });
fs.writeFileSync("dist/out.txt", body + "\\n");
console.log("building hoard-rush-lib for real");
"""
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "hoard-e2e",
    "GIT_AUTHOR_EMAIL": "e2e@hoard.invalid",
    "GIT_COMMITTER_NAME": "hoard-e2e",
    "GIT_COMMITTER_EMAIL": "e2e@hoard.invalid",
}


def installed_version(install_dir: Path) -> str | None:
    """Rush's version in install_dir, if its HTTP build cache plugin matches it."""
    modules = install_dir / "node_modules"
    versions = set()
    for package in ("@microsoft/rush", "@microsoft/rush-lib", "@rushstack/rush-http-build-cache-plugin"):
        manifests = [
            modules / package / "package.json",
            *modules.glob(f"**/node_modules/{package}/package.json"),
        ]
        found = [json.loads(path.read_text())["version"] for path in manifests if path.is_file()]
        if not found:
            return None
        versions.update(found)
    return versions.pop() if len(versions) == 1 else None


@pytest.fixture(scope="module")
def rush() -> Path:
    services_env.require_commands("node", "npm", "git", "tar", what="the Rush end-to-end tests")
    turbo.npm_install_pinned(
        INSTALL_DIR, "@microsoft/rush", RUSH_VERSION, installed_version=installed_version
    )
    return INSTALL_DIR / "node_modules" / ".bin" / "rush"


def rush_env(repo: Path, **extra: str) -> dict[str, str]:
    home = repo.parent / "home"
    home.mkdir(exist_ok=True)
    return clean_env("RUSH_", HOME=str(home), RUSH_GLOBAL_FOLDER=str(GLOBAL_FOLDER), **GIT_IDENTITY, **extra)


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args], cwd=repo, env={**os.environ, **GIT_IDENTITY}, check=True, capture_output=True
    )


@pytest.fixture(scope="module")
def repo_template(rush, hoard, tmp_path_factory) -> Path:
    """A committed one-project Rush repo, `rush update` already run."""
    repo = tmp_path_factory.mktemp("rush") / "repo"
    project = repo / "projects" / "lib"
    (project / "config").mkdir(parents=True)
    (repo / "common" / "config" / "rush").mkdir(parents=True)
    rush_json = {
        "rushVersion": RUSH_VERSION,
        "pnpmVersion": PNPM_VERSION,
        "nodeSupportedVersionRange": ">=20.9.0",
        "projects": [{"packageName": "hoard-rush-lib", "projectFolder": "projects/lib"}],
    }
    (repo / "rush.json").write_text(json.dumps(rush_json, indent=2))
    build_cache = {
        "buildCacheEnabled": True,
        "cacheProvider": "http",
        "httpConfiguration": {"url": tool_url(hoard, "rush"), "isCacheWriteAllowed": True},
    }
    (repo / "common/config/rush/build-cache.json").write_text(json.dumps(build_cache, indent=2))
    package = {
        "name": "hoard-rush-lib",
        "version": "1.0.0",
        "private": True,
        "scripts": {"build": "node build.js"},
    }
    (project / "package.json").write_text(json.dumps(package, indent=2))
    (project / "build.js").write_text(BUILD_JS)
    settings = {"operationSettings": [{"operationName": "build", "outputFolderNames": ["dist"]}]}
    (project / "config/rush-project.json").write_text(json.dumps(settings))
    # Untracked files in a project change its cache key: Rush's own leave the tree.
    (repo / ".gitignore").write_text(
        "node_modules/\ncommon/temp/\ndist/\n**/.rush/temp/\nrush-logs/\n*.log\n"
    )
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "fixture")
    run([str(rush), "update"], cwd=repo, env=rush_env(repo), timeout=300)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "rush update")
    return repo


@pytest.fixture
def repo(repo_template, tmp_path) -> Path:
    return Path(shutil.copytree(repo_template, tmp_path / "repo", symlinks=True))


def build(rush: Path, repo: Path, *, key: str) -> subprocess.CompletedProcess:
    """`rush build --verbose` with empty local build cache and outputs."""
    project = repo / "projects" / "lib"
    for leftover in (repo / "common/temp/build-cache", project / "dist", project / ".rush/temp/operation"):
        shutil.rmtree(leftover, ignore_errors=True)
    env = rush_env(repo, RUSH_BUILD_CACHE_CREDENTIAL=f"Bearer {key}")
    return run([str(rush), "build", "--verbose"], cwd=repo, env=env, timeout=300)


def point_at(repo: Path, hoard) -> None:
    """Point the repo's build-cache.json at another Hoard, committed like
    the rest of the fixture's tree."""
    config_path = repo / "common/config/rush/build-cache.json"
    config = json.loads(config_path.read_text())
    config["httpConfiguration"]["url"] = tool_url(hoard, "rush")
    config_path.write_text(json.dumps(config, indent=2))
    git(repo, "commit", "-qam", f"the Hoard at {hoard.url}")


def runs(repo: Path) -> int:
    """How many times the build ran for real since last asked."""
    log = repo.parent / "runs.log"
    count = len(log.read_text().split()) if log.exists() else 0
    log.unlink(missing_ok=True)
    return count


def output_digest(repo: Path) -> str:
    return hashlib.sha256((repo / "projects/lib/dist/out.txt").read_bytes()).hexdigest()


def test_second_build_is_served_from_hoard(rush, hoard, new_tenant, repo):
    owner, stranger = new_tenant(), new_tenant()

    window = LogWindow(hoard)
    cold = build(rush, repo, key=owner.key).stdout
    assert runs(repo) == 1, cold
    assert "This project was not found in the build cache." in cold, cold
    assert "Successfully set cache entry." in cold, cold
    (store,) = window.requests("PUT", PREFIX)
    assert store[1] in {"200", "201", "204"}, store
    # The plugin retries a miss before it believes it.
    assert set(window.requests("GET", PREFIX, expected=3)) == {(store[0], "404")}
    built = output_digest(repo)

    window = LogWindow(hoard)
    foreign = build(rush, repo, key=stranger.key).stdout
    assert runs(repo) == 1, foreign
    assert "Build cache hit." not in foreign, foreign
    assert set(window.requests("GET", PREFIX, expected=3)) == {(store[0], "404")}

    window = LogWindow(hoard)
    warm = build(rush, repo, key=owner.key).stdout
    assert "Build cache hit." in warm, warm
    assert "Successfully restored output from the build cache." in warm, warm
    assert runs(repo) == 0, warm
    assert window.requests("GET", PREFIX) == [(store[0], "200")]
    assert output_digest(repo) == built
    assert stored_entries(hoard, owner, "rush") == 1


def test_a_tool_turned_off_still_builds_and_stores_nothing(rush, hoard, new_tenant, repo):
    """With rush turned off for the tenant a read is a miss and Hoard
    declines the write with a 202 that stores nothing: rush-lib fails a build
    on any write its plugin reports failed, whatever the status."""
    owner = new_tenant()
    hoard.flask("tenants", "set-tool", owner.slug, "rush", "off")

    window = LogWindow(hoard)
    off = build(rush, repo, key=owner.key).stdout

    assert runs(repo) == 1, off
    assert "Build cache hit." not in off, off
    assert "Unable to set cloud cache entry." not in off, off
    assert {status for _, status in window.requests("GET", PREFIX, expected=3)} == {"404"}
    assert window.statuses("PUT", PREFIX) == ["202"]
    assert stored_entries(hoard, owner, "rush") == 0


def test_a_hit_follows_hoards_redirect_to_the_object_store(rush, s3_redirect_hoard, repo):
    """On S3 storage with DOWNLOAD_MODE=redirect, Hoard answers the plugin's
    GET with a presigned URL, and Rush fetches the entry from there."""
    hoard = s3_redirect_hoard
    owner = hoard.create_tenant("rush-s3")
    point_at(repo, hoard)
    assert "Successfully set cache entry." in build(rush, repo, key=owner.key).stdout
    built = output_digest(repo)
    runs(repo)

    window = LogWindow(hoard)
    warm = build(rush, repo, key=owner.key).stdout
    assert "Build cache hit." in warm, warm
    assert runs(repo) == 0, warm
    assert window.statuses("GET", PREFIX) == ["302"]
    assert output_digest(repo) == built


def test_a_build_never_fails_because_hoard_cannot_count_its_requests(
    rush, repo, tmp_path, new_postgres_database
):
    """With Redis (the rate limits) unreachable, every request is refused for
    the moment: Rush's reads get the 503 its plugin takes for transient, its
    write the 202 it takes for done, and the build passes, building for real."""
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with HoardServer(
        var_dir=tmp_path / "hoard",
        database_url=new_postgres_database(),
        workers=1,
        env_overrides={"RATELIMIT_STORAGE_URI": dead_redis},
        ready_status=503,
    ) as hoard:
        owner = hoard.create_tenant("rush-no-redis")
        point_at(repo, hoard)

        window = LogWindow(hoard)
        result = build(rush, repo, key=owner.key)
        assert runs(repo) == 1, result.stdout
        assert {status for _, status in window.requests("GET", PREFIX, expected=3)} == {"503"}
        assert window.statuses("PUT", PREFIX) == ["202"]
        assert stored_entries(hoard, owner, "rush") == 0
