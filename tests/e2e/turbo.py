"""The real `turbo` CLI for end-to-end tests: a pinned install, a generated
monorepo whose builds write several MB, and runs read back from `--summarize`.

Wire behaviour this relies on is recorded in the turbo research notes: with
`--cache=remote:rw` the local cache is off, so a hit can only come from Hoard.
"""

import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TURBO_VERSION = "2.11.11"
ROOT = Path(__file__).resolve().parents[2]
INSTALL_DIR = ROOT / ".cache" / f"turbo-{TURBO_VERSION}"

# turbo's npm package pulls the native binary in as an optional dependency.
_PLATFORM_PACKAGES = {
    ("linux", "x86_64"): "linux-64",
    ("linux", "aarch64"): "linux-arm64",
    ("linux", "arm64"): "linux-arm64",
    ("darwin", "x86_64"): "darwin-64",
    ("darwin", "arm64"): "darwin-arm64",
}

# A real task graph: pkg1 and pkg2 read pkg0's outputs, pkg3 reads both.
PACKAGES: dict[str, tuple[str, ...]] = {
    "pkg0": (),
    "pkg1": ("pkg0",),
    "pkg2": ("pkg0",),
    "pkg3": ("pkg1", "pkg2"),
}
MiB = 1024 * 1024
BLOB_BYTES = {name: 2 * MiB + index * 256 * 1024 for index, name in enumerate(PACKAGES)}
OUTPUT_FILES = ("assets/blob.bin", "notes.txt", "index.js", "manifest.json")

# Deterministic but incompressible: an AES-256-CTR keystream keyed by the
# package name. Each build also reads its dependencies' manifests, so it
# fails when run before them.
BUILD_JS = """\
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const pkg = require("./package.json");

const key = crypto.createHash("sha256").update(pkg.name).digest();
const cipher = crypto.createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
const blob = Buffer.concat([cipher.update(Buffer.alloc(pkg.hoard.blobBytes)), cipher.final()]);
const upstream = Object.keys(pkg.dependencies || {}).map((dep) => {
  const manifest = JSON.parse(fs.readFileSync(path.join("..", dep, "dist", "manifest.json"), "utf8"));
  return { name: dep, blob: manifest.files["assets/blob.bin"] };
});
const lines = [];
for (let i = 0; i < 20000; i++) lines.push(`${pkg.name} line ${i} ${key.toString("hex", 0, 8)}`);

fs.rmSync("dist", { recursive: true, force: true });
fs.mkdirSync("dist/assets", { recursive: true });
const files = {
  "assets/blob.bin": blob,
  "notes.txt": lines.join("\\n") + "\\n",
  "index.js": `module.exports = ${JSON.stringify({ name: pkg.name, upstream })};\\n`,
};
const digests = {};
for (const [name, data] of Object.entries(files)) {
  fs.writeFileSync(path.join("dist", name), data);
  digests[name] = crypto.createHash("sha256").update(data).digest("hex");
}
fs.writeFileSync("dist/manifest.json", JSON.stringify({ name: pkg.name, upstream, files: digests }, null, 2));
console.log(`built ${pkg.name}: ${blob.length} random bytes, ${upstream.length} upstream`);
"""


def quiet_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for npm and turbo: offline, no telemetry, no notices,
    and no TURBO_*/VERCEL_* settings inherited from the caller."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith(("TURBO_", "VERCEL_"))
    }
    env.update(
        TURBO_TELEMETRY_DISABLED="1",
        TURBO_NO_UPDATE_NOTIFIER="1",
        TURBO_PRINT_VERSION_DISABLED="1",
        TURBO_GLOBAL_WARNING_DISABLED="1",
        TURBO_UI="false",
        DO_NOT_TRACK="1",
        NO_COLOR="1",
        npm_config_update_notifier="false",
        npm_config_audit="false",
        npm_config_fund="false",
    )
    return env


def binary_path(install_dir: Path = INSTALL_DIR) -> Path:
    system, machine = platform.system().lower(), platform.machine().lower()
    try:
        package = _PLATFORM_PACKAGES[(system, machine)]
    except KeyError:
        raise RuntimeError(f"no turbo binary package known for {system}/{machine}") from None
    return install_dir / "node_modules" / "@turbo" / package / "bin" / "turbo"


def installed_version(binary: Path) -> str | None:
    if not binary.is_file():
        return None
    result = subprocess.run(
        [str(binary), "--version"], env=quiet_env(), capture_output=True, text=True, timeout=60
    )
    return result.stdout.strip() if result.returncode == 0 else None


def npm_install_pinned(
    install_dir: Path,
    package: str,
    version: str,
    *,
    installed_version: Callable[[Path], str | None],
    flags: tuple[str, ...] = (),
) -> None:
    """Install package@version with npm into install_dir, unless
    installed_version(install_dir) already reports it. The install happens in
    a sibling directory renamed into place, so an interrupted one leaves
    nothing half-made."""
    if installed_version(install_dir) == version:
        return
    install_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{install_dir.name}-", dir=install_dir.parent))
    try:
        (staging / "package.json").write_text(
            json.dumps(
                {"name": f"hoard-pin-{install_dir.name}", "private": True, "dependencies": {package: version}}
            )
        )
        result = subprocess.run(
            ["npm", "install", *flags, "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=staging,
            env=quiet_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(f"npm install {package}@{version} failed:\n{result.stderr[-3000:]}")
        if (found := installed_version(staging)) != version:
            raise RuntimeError(f"npm installed {package} {found!r}, expected {version}")
        staging.chmod(0o755)
        shutil.rmtree(install_dir, ignore_errors=True)
        try:
            staging.rename(install_dir)
        except OSError:
            # Another process installed it meanwhile; use theirs if it works.
            if installed_version(install_dir) != version:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install(install_dir: Path = INSTALL_DIR) -> Path:
    """The pinned turbo binary, installed into install_dir on first use."""
    npm_install_pinned(
        install_dir,
        "turbo",
        TURBO_VERSION,
        installed_version=lambda directory: installed_version(binary_path(directory)),
        flags=("--include=optional",),
    )
    return binary_path(install_dir)


def write_turbo_json(repo: Path, *, signature: bool) -> None:
    config: dict = {"$schema": "https://turborepo.com/schema.json"}
    if signature:
        config["remoteCache"] = {"signature": True}
    config["tasks"] = {"build": {"dependsOn": ["^build"], "outputs": ["dist/**"]}}
    (repo / "turbo.json").write_text(json.dumps(config, indent=2) + "\n")


def generate_monorepo(repo: Path) -> Path:
    """An npm-workspaces monorepo of PACKAGES without external dependencies,
    linked and locked with an offline `npm install`."""
    npm_version = subprocess.run(
        ["npm", "--version"], env=quiet_env(), capture_output=True, text=True, check=True
    ).stdout.strip()
    repo.mkdir(parents=True)
    root_package = {
        "name": "hoard-turbo-fixture",
        "version": "0.0.0",
        "private": True,
        "workspaces": ["packages/*"],
        "packageManager": f"npm@{npm_version}",
    }
    (repo / "package.json").write_text(json.dumps(root_package, indent=2) + "\n")
    (repo / ".gitignore").write_text("node_modules\ndist\n.turbo\n")
    write_turbo_json(repo, signature=False)
    for name, deps in PACKAGES.items():
        package_dir = repo / "packages" / name
        package_dir.mkdir(parents=True)
        package = {
            "name": name,
            "version": "1.0.0",
            "private": True,
            "scripts": {"build": "node build.js"},
            "dependencies": {dep: "*" for dep in deps},
            "hoard": {"blobBytes": BLOB_BYTES[name]},
        }
        (package_dir / "package.json").write_text(json.dumps(package, indent=2) + "\n")
        (package_dir / "build.js").write_text(BUILD_JS)
    result = subprocess.run(
        ["npm", "install", "--offline", "--no-audit", "--no-fund"],
        cwd=repo,
        env=quiet_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"npm install in the fixture monorepo failed:\n{result.stderr[-3000:]}")
    return repo


def wipe(repo: Path) -> None:
    """Remove build outputs and every trace of turbo's local cache and logs."""
    for path in (repo / ".turbo", repo / "node_modules" / ".cache"):
        shutil.rmtree(path, ignore_errors=True)
    for package_dir in (repo / "packages").iterdir():
        shutil.rmtree(package_dir / "dist", ignore_errors=True)
        shutil.rmtree(package_dir / ".turbo", ignore_errors=True)


def hash_outputs(repo: Path) -> dict[str, str]:
    """SHA-256 of every file under packages/*/dist, by path from the repo root."""
    return {
        str(path.relative_to(repo)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(repo.glob("packages/*/dist/**/*"))
        if path.is_file()
    }


def expected_outputs() -> set[str]:
    return {f"packages/{name}/dist/{file}" for name in PACKAGES for file in OUTPUT_FILES}


@dataclass
class Run:
    returncode: int
    output: str
    summary: dict

    @property
    def tasks(self) -> dict[str, dict]:
        return {task["taskId"]: task for task in self.summary["tasks"]}

    @property
    def hashes(self) -> dict[str, str]:
        return {task_id: task["hash"] for task_id, task in self.tasks.items()}

    def cache_sources(self) -> dict[str, tuple[str, str | None]]:
        """Per task: (status, source), e.g. ("HIT", "REMOTE") or ("MISS", None)."""
        return {
            task_id: (task["cache"]["status"], task["cache"].get("source"))
            for task_id, task in self.tasks.items()
        }


def run_build(
    binary: Path,
    repo: Path,
    *,
    api: str,
    token: str,
    team: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Run:
    """`turbo run build` against a remote cache only, with a run summary."""
    args = [
        str(binary),
        "run",
        "build",
        f"--api={api}",
        f"--token={token}",
        "--cache=remote:rw",
        "--summarize",
        "--ui=stream",
        "--log-order=grouped",
    ]
    if team is not None:
        args.append(f"--team={team}")
    # Turbo's user-level config (a `turbo login` token) stays out of the run.
    config_dir = repo.parent / f"{repo.name}-turbo-config"
    config_dir.mkdir(exist_ok=True)
    run_env = {
        **quiet_env(),
        "TURBO_CONFIG_DIR_PATH": str(config_dir),
        "VERCEL_CONFIG_DIR_PATH": str(config_dir),
        **(env or {}),
    }
    result = subprocess.run(
        args,
        cwd=repo,
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    summaries = sorted((repo / ".turbo" / "runs").glob("*.json"))
    if len(summaries) != 1:
        raise AssertionError(
            f"expected one run summary, found {len(summaries)}; turbo said:\n{result.stdout}"
        )
    return Run(
        returncode=result.returncode, output=result.stdout, summary=json.loads(summaries[0].read_text())
    )
