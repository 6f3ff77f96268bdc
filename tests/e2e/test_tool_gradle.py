"""Debian's Gradle with an HttpBuildCache on Hoard, HTTP basic credentials
whose password is a Hoard key.

The cold build compiles and pushes; after `build/` is wiped, a second
tenant's key finds nothing, and the first tenant's key restores compileJava
FROM-CACHE, as Gradle's plain console reports it.
"""

import hashlib
import re
import shutil
from pathlib import Path

import pytest

from tests import services_env
from tests.e2e.cache_clients import LogWindow, clean_env, run, stored_entries, tool_url

PREFIX = "/cache/gradle/"
# Credentials come from the environment, as a CI job would pass them.
SETTINGS = """\
rootProject.name = 'hoard-tiny'
buildCache {
    local { enabled = false }
    remote(HttpBuildCache) {
        url = System.getenv('HOARD_CACHE_URL')
        push = true
        credentials {
            username = 'gradle'
            password = System.getenv('HOARD_KEY')
        }
    }
}
"""
SOURCE = """\
package hoard;

public class Greeter {
    public static String greet(String name) { return "hello " + name; }
    public static void main(String[] args) { System.out.println(greet("hoard")); }
}
"""


@pytest.fixture(scope="module", autouse=True)
def gradle_installed():
    services_env.require_commands("gradle", "java", what="the Gradle end-to-end tests")


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    (root / "src/main/java/hoard").mkdir(parents=True)
    (root / "settings.gradle").write_text(SETTINGS)
    (root / "build.gradle").write_text("apply plugin: 'java'\n")
    (root / "src/main/java/hoard/Greeter.java").write_text(SOURCE)
    return root


def build(project: Path, *, url: str, key: str) -> str:
    """A clean `gradle compileJava` with the build cache; its plain console output."""
    for leftover in ("build", ".gradle"):
        shutil.rmtree(project / leftover, ignore_errors=True)
    env = clean_env(
        "GRADLE_",
        "JAVA_TOOL_OPTIONS",
        GRADLE_USER_HOME=str(project.parent / "gradle-home"),
        HOARD_CACHE_URL=url,
        HOARD_KEY=key,
    )
    args = ["gradle", "--no-daemon", "--build-cache", "--console=plain", "--stacktrace", "compileJava"]
    return run(args, cwd=project, env=env, timeout=300).stdout


def task_outcome(output: str) -> str:
    """What Gradle says about compileJava: '' when it ran, else e.g. 'FROM-CACHE'."""
    match = re.search(r"^(?:> Task )?:compileJava\b ?(.*)$", output, re.MULTILINE)
    assert match, output
    return match.group(1).strip()


def class_digest(project: Path) -> str:
    compiled = project / "build/classes/java/main/hoard/Greeter.class"
    return hashlib.sha256(compiled.read_bytes()).hexdigest()


def test_second_build_is_served_from_hoard(hoard, new_tenant, project):
    owner, stranger = new_tenant(), new_tenant()
    url = tool_url(hoard, "gradle")

    window = LogWindow(hoard)
    cold = build(project, url=url, key=owner.key)
    assert task_outcome(cold) == "", cold
    assert "1 actionable task: 1 executed" in cold, cold
    assert "Could not" not in cold and "response status" not in cold, cold
    (lookup,) = window.requests("GET", PREFIX)
    (store,) = window.requests("PUT", PREFIX)
    assert lookup[1] == "404" and store[0] == lookup[0] and store[1] in {"200", "201", "204"}, (lookup, store)
    built = class_digest(project)

    window = LogWindow(hoard)
    foreign = build(project, url=url, key=stranger.key)
    assert task_outcome(foreign) == "", foreign
    assert window.requests("GET", PREFIX) == [(lookup[0], "404")]

    window = LogWindow(hoard)
    warm = build(project, url=url, key=owner.key)
    assert task_outcome(warm) == "FROM-CACHE", warm
    assert "1 actionable task: 1 from cache" in warm, warm
    assert window.requests("GET", PREFIX) == [(lookup[0], "200")]
    assert class_digest(project) == built
    assert stored_entries(hoard, owner, "gradle") == 1


def test_a_hit_follows_hoards_redirect_to_the_object_store(s3_redirect_hoard, project):
    """On S3 storage with DOWNLOAD_MODE=redirect, Hoard answers Gradle's
    GET with a presigned URL, and Gradle fetches the entry from there."""
    hoard = s3_redirect_hoard
    owner = hoard.create_tenant("gradle-s3")
    url = tool_url(hoard, "gradle")
    assert task_outcome(build(project, url=url, key=owner.key)) == ""
    built = class_digest(project)

    window = LogWindow(hoard)
    warm = build(project, url=url, key=owner.key)
    assert task_outcome(warm) == "FROM-CACHE", warm
    assert window.statuses("GET", PREFIX) == ["302"]
    assert class_digest(project) == built
