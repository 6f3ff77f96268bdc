"""The real `nx` CLI (npm) with Nx's self-hosted remote cache on Hoard:
NX_SELF_HOSTED_REMOTE_CACHE_SERVER is Hoard's root and the access token a
Hoard key, so Nx calls PUT and GET /v1/cache/{hash}.

A cold run builds both projects and uploads them; after `.nx/` and the
outputs are wiped, a second tenant's key finds nothing, and the first
tenant's key replays both tasks "[remote cache]", as Nx itself reports.
"""

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import services_env
from tests.e2e import turbo
from tests.e2e.cache_clients import LogWindow, clean_env, run, stored_entries, unknown_key

NX_VERSION = "24.0.6"
INSTALL_DIR = turbo.ROOT / ".cache" / f"nx-{NX_VERSION}"
PREFIX = "/v1/cache/"
PROJECTS = {"lib": [], "app": ["lib"]}
# Each build reads its dependencies' outputs, so it fails when run before them,
# and notes that it ran in a file outside the workspace: Nx replays a cached
# task's terminal output, so only that file tells a replay from a run.
BUILD_JS = """\
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const name = path.basename(__dirname);
fs.appendFileSync(path.join(__dirname, "..", "..", "..", "runs.log"), name + "\\n");
const deps = process.argv.slice(2).map((dep) =>
  fs.readFileSync(path.join(__dirname, "..", dep, "dist", "out.txt"), "utf8"));
const body = crypto.createHash("sha256").update(name).digest("hex").repeat(2000);
fs.mkdirSync(path.join(__dirname, "dist"), { recursive: true });
fs.writeFileSync(path.join(__dirname, "dist", "out.txt"), `${name} ${deps.length}\\n${body}\\n`);
console.log(`building ${name} for real`);
"""


def installed_version(install_dir: Path) -> str | None:
    """The nx version installed in install_dir, if its native binding is there too."""
    modules = install_dir / "node_modules"
    try:
        version = json.loads((modules / "nx" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return version if any((modules / "@nx").glob("nx-*/*.node")) else None


@pytest.fixture(scope="module")
def nx_modules() -> Path:
    services_env.require_commands("node", "npm", what="the Nx end-to-end tests")
    # nx's postinstall only prints; its native binding is an optional dependency.
    turbo.npm_install_pinned(
        INSTALL_DIR, "nx", NX_VERSION, installed_version=installed_version, flags=("--include=optional",)
    )
    return INSTALL_DIR / "node_modules"


@pytest.fixture
def workspace(tmp_path, nx_modules) -> Path:
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "package.json").write_text(json.dumps({"name": "hoard-nx-fixture", "private": True}))
    (root / "nx.json").write_text(json.dumps({"targetDefaults": {"build": {"cache": True}}}))
    (root / "node_modules").symlink_to(nx_modules)
    # Nx hashes every file git would track: outputs and its own cache are not inputs.
    (root / ".gitignore").write_text("node_modules\n.nx\ndist\n")
    for name, deps in PROJECTS.items():
        project = root / "packages" / name
        project.mkdir(parents=True)
        (project / "build.js").write_text(BUILD_JS)
        target = {
            "command": " ".join(["node", f"packages/{name}/build.js", *deps]),
            "cache": True,
            "dependsOn": ["^build"],
            "outputs": ["{projectRoot}/dist"],
        }
        config = {"name": name, "implicitDependencies": deps, "targets": {"build": target}}
        (project / "project.json").write_text(json.dumps(config, indent=2))
    return root


def build(workspace: Path, *, server: str, key: str, check: bool = True) -> subprocess.CompletedProcess:
    """`nx run-many -t build` after wiping Nx's local cache and the outputs."""
    shutil.rmtree(workspace / ".nx", ignore_errors=True)
    for name in PROJECTS:
        shutil.rmtree(workspace / "packages" / name / "dist", ignore_errors=True)
    env = clean_env(
        "NX_",
        NX_SELF_HOSTED_REMOTE_CACHE_SERVER=server,
        NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN=key,
        NX_DAEMON="false",
        NX_NO_CLOUD="true",
        NX_TUI="false",
        NX_SKIP_NX_CACHE="false",
        HOME=str(workspace.parent / "home"),
    )
    args = ["node_modules/.bin/nx", "run-many", "-t", "build", "--outputStyle=static"]
    return run(args, cwd=workspace, env=env, timeout=180, check=check)


def runs(workspace: Path) -> list[str]:
    """The builds that ran for real, in order, and forget them."""
    log = workspace.parent / "runs.log"
    ran = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return ran


def output_digests(workspace: Path) -> dict[str, str]:
    return {
        name: hashlib.sha256((workspace / "packages" / name / "dist" / "out.txt").read_bytes()).hexdigest()
        for name in PROJECTS
    }


def test_second_run_is_replayed_from_hoard(hoard, new_tenant, workspace):
    owner, stranger = new_tenant(), new_tenant()
    tasks = len(PROJECTS)

    window = LogWindow(hoard)
    cold = build(workspace, server=hoard.url, key=owner.key).stdout
    assert runs(workspace) == ["lib", "app"], cold
    assert "[remote cache]" not in cold, cold
    assert re.search(rf"Cache:\s+0/{tasks} hit", cold), cold
    stores = window.requests("PUT", PREFIX, expected=tasks)
    lookups = window.requests("GET", PREFIX, expected=tasks)
    # Nx wants 200 for a stored entry (it retries a 201 once).
    assert sorted(status for _, status in stores) == ["200"] * tasks, stores
    assert sorted(lookups) == sorted((path, "404") for path, _ in stores), lookups
    built = output_digests(workspace)

    window = LogWindow(hoard)
    foreign = build(workspace, server=hoard.url, key=stranger.key).stdout
    assert runs(workspace) == ["lib", "app"], foreign
    assert "[remote cache]" not in foreign, foreign
    assert sorted(window.requests("GET", PREFIX, expected=tasks)) == sorted(lookups)

    window = LogWindow(hoard)
    warm = build(workspace, server=hoard.url, key=owner.key).stdout
    assert runs(workspace) == [], warm
    assert warm.count("[remote cache]") == tasks, warm
    assert f"for {tasks} out of {tasks} tasks" in warm, warm
    assert re.search(rf"Cache:\s+{tasks}/{tasks} hit", warm), warm
    assert sorted(window.requests("GET", PREFIX, expected=tasks)) == sorted(
        (path, "200") for path, _ in stores
    )
    assert output_digests(workspace) == built
    assert stored_entries(hoard, owner, "nx") == tasks


def test_an_unknown_key_fails_the_run_with_hoards_message(hoard, workspace):
    """Nx treats a refused key as a misconfiguration and stops, printing the
    text/plain body Hoard answered."""
    window = LogWindow(hoard)
    refused = build(workspace, server=hoard.url, key=unknown_key(), check=False)

    assert refused.returncode != 0, refused.stdout
    assert "A valid API key is required." in refused.stdout, refused.stdout
    window.settle()
    assert set(window.statuses("GET", PREFIX)) == {"401"}
    assert all(status == "401" for status in window.statuses("PUT", PREFIX, expected=0))


def test_a_tool_turned_off_still_builds(hoard, new_tenant, workspace):
    """With nx turned off for the tenant, reads are misses and writes are
    refused, and the run still succeeds (Nx takes a refused PUT as a
    read-only token)."""
    owner = new_tenant()
    hoard.flask("tenants", "set-tool", owner.slug, "nx", "off")

    window = LogWindow(hoard)
    off = build(workspace, server=hoard.url, key=owner.key)

    assert off.returncode == 0
    assert runs(workspace) == ["lib", "app"], off.stdout
    assert "[remote cache]" not in off.stdout, off.stdout
    assert set(window.statuses("GET", PREFIX, expected=len(PROJECTS))) == {"404"}
    assert set(window.statuses("PUT", PREFIX, expected=len(PROJECTS))) == {"403"}
    assert stored_entries(hoard, owner, "nx") == 0


def test_a_hit_follows_hoards_redirect_to_the_object_store(s3_redirect_hoard, workspace):
    """On S3 storage with DOWNLOAD_MODE=redirect, Hoard answers Nx's GET
    with a presigned URL, and Nx fetches the entry from there."""
    hoard = s3_redirect_hoard
    owner = hoard.create_tenant("nx-s3")
    build(workspace, server=hoard.url, key=owner.key)
    built = output_digests(workspace)
    runs(workspace)

    window = LogWindow(hoard)
    warm = build(workspace, server=hoard.url, key=owner.key).stdout
    assert runs(workspace) == [], warm
    assert warm.count("[remote cache]") == len(PROJECTS), warm
    assert window.statuses("GET", PREFIX, expected=len(PROJECTS)) == ["302"] * len(PROJECTS)
    assert output_digests(workspace) == built
