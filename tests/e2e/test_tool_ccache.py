"""Debian's ccache against Hoard's plain HTTP cache, in each of its layouts.

A cold build with an empty cache directory uploads every result; after the
cache directory and the objects are wiped, a second tenant's key finds
nothing, and the first tenant's key is served every compilation remotely,
as `ccache --print-stats` and `ccache -s` report it. Refused keys, a tool
turned off and S3 storage never fail a compilation.
"""

import hashlib
import re
import shutil
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

SOURCES = {
    "twice.c": "int twice(int x) { return 2 * x; }\n",
    "main.c": "int twice(int x);\nint main(void) { return twice(21) - 42; }\n",
}
PREFIX = "/cache/ccache/"


@pytest.fixture(scope="module", autouse=True)
def ccache_installed():
    services_env.require_commands("ccache", "gcc", what="the ccache end-to-end tests")


@pytest.fixture
def project(tmp_path) -> Path:
    return source_tree(tmp_path / "project", SOURCES)


def remote_storage(hoard, key: str, layout: str, auth: str) -> str:
    """ccache's remote_storage setting for Hoard with either credential form."""
    if auth == "bearer-token":
        return f"{tool_url(hoard, 'ccache')}|layout={layout}|bearer-token={key}"
    userinfo_url = tool_url(hoard, "ccache").replace("http://", f"http://anyuser:{key}@")
    return f"{userinfo_url}|layout={layout}"


def ccache_env(project: Path, storage: str) -> dict[str, str]:
    """ccache configured only by `storage`, with its cache directory beside the project."""
    config = project.parent / "ccache.conf"
    config.write_text("")
    return clean_env(
        "CCACHE_",
        CCACHE_DIR=str(project.parent / "ccache-dir"),
        CCACHE_CONFIGPATH=str(config),
        CCACHE_REMOTE_STORAGE=storage,
    )


def build(project: Path, storage: str) -> dict[str, int]:
    """Compile every source through ccache with a fresh cache directory;
    ccache's own remote storage counters for the build (hit, miss, write...)."""
    env = ccache_env(project, storage)
    shutil.rmtree(env["CCACHE_DIR"], ignore_errors=True)
    for name in SOURCES:
        (project / name).with_suffix(".o").unlink(missing_ok=True)
        run(["ccache", "gcc", "-O1", "-c", name, "-o", Path(name).stem + ".o"], cwd=project, env=env)
    stats = run(["ccache", "--print-stats"], cwd=project, env=env).stdout
    counters = (line.split("\t") for line in stats.splitlines())
    return {
        name.removeprefix("remote_storage_"): int(value)
        for name, value in counters
        if name.startswith("remote_storage_")
    }


def object_digests(project: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(project.glob("*.o"))}


@pytest.mark.parametrize(
    ("layout", "auth"), [("subdirs", "bearer-token"), ("flat", "basic"), ("bazel", "bearer-token")]
)
def test_second_build_is_served_from_hoard(layout, auth, hoard, new_tenant, project):
    owner, stranger = new_tenant(), new_tenant()
    compiles = len(SOURCES)

    window = LogWindow(hoard)
    cold = build(project, remote_storage(hoard, owner.key, layout, auth))
    assert cold["hit"] == 0, cold
    assert cold["miss"] == compiles, cold
    assert cold["error"] == cold["timeout"] == 0, cold
    # A manifest and a result per compilation.
    assert cold["write"] == 2 * compiles, cold
    puts = window.requests("PUT", PREFIX, expected=2 * compiles)
    assert len(puts) == 2 * compiles and {status for _, status in puts} <= {"200", "201", "204"}, puts
    if layout == "bazel":
        assert all(path.startswith(PREFIX + "ac/") for path, _ in puts), puts
    built = object_digests(project)
    assert set(built) == {"twice.o", "main.o"}

    window = LogWindow(hoard)
    foreign = build(project, remote_storage(hoard, stranger.key, layout, auth))
    assert foreign["hit"] == 0, foreign
    assert foreign["miss"] == compiles, foreign
    assert foreign["error"] == 0, foreign
    # It asked for exactly the keys the owner stored, and Hoard had none of them for it.
    gets = window.requests("GET", PREFIX, expected=2 * compiles)
    assert {path for path, _ in gets} == {path for path, _ in puts}, gets
    assert {status for _, status in gets} == {"404"}, gets

    storage = remote_storage(hoard, owner.key, layout, auth)
    warm = build(project, storage)
    assert warm["hit"] == compiles, warm
    assert warm["miss"] == 0, warm
    assert warm["error"] == 0, warm
    assert warm["write"] == 0, warm
    summary = run(["ccache", "-s"], cwd=project, env=ccache_env(project, storage)).stdout
    assert re.search(rf"Remote storage:\s*\n\s*Hits:\s+{compiles} /\s+{compiles}\b", summary), summary
    assert stored_entries(hoard, owner, "ccache") == len({path for path, _ in puts})
    assert object_digests(project) == built


def test_an_unknown_key_still_builds_and_stores_nothing(hoard, project):
    window = LogWindow(hoard)
    refused = build(project, remote_storage(hoard, unknown_key(), "subdirs", "bearer-token"))

    assert set(object_digests(project)) == {"twice.o", "main.o"}
    # ccache counts each refusal as an error, and Hoard stored nothing it tried.
    assert refused["error"] == len(SOURCES), refused
    assert refused["hit"] == refused["write"] == 0, refused
    assert set(window.statuses("GET", PREFIX, expected=len(SOURCES))) == {"401"}
    assert set(window.statuses("PUT", PREFIX, expected=len(SOURCES))) == {"401"}


def test_a_tool_turned_off_still_builds_and_keeps_its_entries(hoard, new_tenant, project):
    """`flask tenants set-tool <slug> ccache off`: ccache compiles without
    remote hits (reads are misses, writes refused); turned on again, what was
    stored before is served."""
    owner = new_tenant()
    storage = remote_storage(hoard, owner.key, "subdirs", "bearer-token")
    compiles = len(SOURCES)
    assert build(project, storage)["write"] == 2 * compiles
    built = object_digests(project)

    hoard.flask("tenants", "set-tool", owner.slug, "ccache", "off")
    window = LogWindow(hoard)
    off = build(project, storage)
    assert off["hit"] == 0 and off["miss"] == compiles, off
    assert object_digests(project) == built
    assert set(window.statuses("GET", PREFIX, expected=2 * compiles)) == {"404"}
    assert set(window.statuses("PUT", PREFIX, expected=2 * compiles)) == {"403"}

    hoard.flask("tenants", "set-tool", owner.slug, "ccache", "on")
    back = build(project, storage)
    assert back["hit"] == compiles and back["error"] == 0, back
    assert object_digests(project) == built


def test_on_s3_a_hit_is_streamed_by_hoard(s3_redirect_hoard, project):
    """ccache's HTTP client follows no redirect, so even with
    DOWNLOAD_MODE=redirect Hoard sends it the bytes from S3 itself."""
    hoard = s3_redirect_hoard
    owner = hoard.create_tenant("ccache-s3")
    storage = remote_storage(hoard, owner.key, "subdirs", "bearer-token")
    assert build(project, storage)["write"] == 2 * len(SOURCES)
    built = object_digests(project)

    window = LogWindow(hoard)
    warm = build(project, storage)
    assert warm["hit"] == len(SOURCES) and warm["error"] == 0, warm
    assert set(window.statuses("GET", PREFIX, expected=2 * len(SOURCES))) == {"200"}
    assert object_digests(project) == built
