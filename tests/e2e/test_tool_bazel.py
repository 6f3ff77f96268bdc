"""Debian's Bazel (bazel-bootstrap 4.2) with --remote_cache on Hoard's /ac/
and /cas/ paths, the key in a bearer or basic --remote_header.

Its C++ rules need rules_cc from the network, so the actions are genrules that
call the system gcc: real actions whose outputs, stdout and action results go
through Hoard. After `bazel clean`, a second tenant's key finds nothing and
the first tenant's key is served every action, as Bazel's summary reports it.
"""

import base64
import hashlib
import re
import shutil
from pathlib import Path

import pytest

from tests import services_env
from tests.e2e.cache_clients import LogWindow, clean_env, run, source_tree, stored_entries, tool_url

PREFIX = "/cache/bazel/"
BUILD = """\
genrule(
    name = "twice_o",
    srcs = ["twice.c"],
    outs = ["twice.o"],
    cmd = "gcc -O1 -c $(location twice.c) -o $@",
)

genrule(
    name = "app",
    srcs = ["main.c", ":twice_o"],
    outs = ["hello"],
    cmd = "gcc -O1 $(location main.c) $(location :twice_o) -o $@",
)
"""
SOURCES = {
    "twice.c": "int twice(int x) { return 2 * x; }\n",
    "main.c": "int twice(int x);\nint main(void) { return twice(21) - 42; }\n",
}
ACTIONS = 2


@pytest.fixture(scope="module", autouse=True)
def bazel_installed():
    services_env.require_commands("bazel", "gcc", what="the Bazel end-to-end tests")


@pytest.fixture
def workspace(tmp_path):
    """A workspace and the bazel command for it; its server is shut down after."""
    root = source_tree(tmp_path / "workspace", {"WORKSPACE": "", "BUILD": BUILD, **SOURCES})
    startup = [
        "bazel",
        "--nohome_rc",
        f"--output_user_root={tmp_path / 'bazel-root'}",
        "--max_idle_secs=300",
    ]
    env = clean_env("BAZEL", HOME=str(tmp_path / "home"), USER="hoard-e2e")
    (tmp_path / "home").mkdir()
    yield root, startup, env
    run([*startup, "shutdown"], cwd=root, env=env, timeout=120, check=False)
    shutil.rmtree(tmp_path / "bazel-root", ignore_errors=True)


def authorization(key: str, auth: str) -> str:
    if auth == "bearer":
        return f"Bearer {key}"
    return "Basic " + base64.b64encode(f"bazel:{key}".encode()).decode()


def build(workspace, *, url: str, key: str, auth: str) -> str:
    """`bazel clean` then `bazel build //:app` against Hoard; Bazel's output."""
    root, startup, env = workspace
    run([*startup, "clean"], cwd=root, env=env, timeout=300)
    args = [
        *startup,
        "build",
        "//:app",
        "--spawn_strategy=local",
        f"--remote_cache={url}",
        f"--remote_header=Authorization={authorization(key, auth)}",
        "--color=no",
        "--curses=no",
    ]
    return run(args, cwd=root, env=env, timeout=300).stdout


def processes(output: str) -> str:
    """Bazel's summary line, e.g. '3 processes: 2 remote cache hit, 1 internal.'"""
    match = re.search(r"^INFO: (\d+ process.*)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def remote_hits(output: str) -> int:
    match = re.search(r"(\d+) remote cache hit", processes(output))
    return int(match.group(1)) if match else 0


def output_digests(root: Path) -> dict[str, str]:
    return {
        name: hashlib.sha256((root / "bazel-bin" / name).read_bytes()).hexdigest()
        for name in ("twice.o", "hello")
    }


@pytest.mark.parametrize("auth", ["bearer", "basic"])
def test_second_build_is_served_from_hoard(auth, hoard, new_tenant, workspace):
    owner, stranger = new_tenant(), new_tenant()
    # Either base URL form: Bazel joins ac/ and cas/ with one slash.
    url = tool_url(hoard, "bazel", slash=auth == "basic")
    root = workspace[0]

    window = LogWindow(hoard)
    cold = build(workspace, url=url, key=owner.key, auth=auth)
    assert remote_hits(cold) == 0, cold
    assert "Remote Cache" not in cold, cold  # e.g. "WARNING: Writing to Remote Cache: ..."
    action_results = window.requests("PUT", PREFIX + "ac/", expected=ACTIONS)
    blobs = window.requests("PUT", PREFIX + "cas/", expected=ACTIONS)
    assert len(action_results) == ACTIONS, action_results
    assert {status for _, status in action_results + blobs} <= {"200", "201", "204"}, action_results + blobs
    built = output_digests(root)
    # Every blob is addressed by its SHA-256: the outputs are among them.
    stored_digests = {path.rsplit("/", 1)[1] for path, _ in blobs}
    assert set(built.values()) <= stored_digests, (built, blobs)

    window = LogWindow(hoard)
    foreign = build(workspace, url=url, key=stranger.key, auth=auth)
    assert remote_hits(foreign) == 0, foreign
    lookups = window.requests("GET", PREFIX + "ac/", expected=ACTIONS)
    assert sorted(lookups) == sorted((path, "404") for path, _ in action_results), lookups

    window = LogWindow(hoard)
    warm = build(workspace, url=url, key=owner.key, auth=auth)
    assert remote_hits(warm) == ACTIONS, warm
    assert "Remote Cache" not in warm, warm
    assert {status for _, status in window.requests("GET", PREFIX, expected=2 * ACTIONS)} == {"200"}
    assert output_digests(root) == built
    assert stored_entries(hoard, owner, "bazel") == len({path for path, _ in action_results + blobs})
