"""The zero-config default enforces the limits it documents, across every
process it serves with: with in-process counts (memory://) gunicorn runs one
worker and refuses to start with more; and the default connection pool of a
default server leaves room for a second one on one PostgreSQL."""

import subprocess

import requests

from config import WORKER_THREADS, Config
from tests.live_server import BIN, ROOT, HoardServer, free_port

POSTGRES_MAX_CONNECTIONS = 100  # PostgreSQL's default max_connections


def test_in_process_limits_refuse_more_than_one_worker(tmp_path):
    env = {
        **HoardServer(var_dir=tmp_path).env,
        "WEB_CONCURRENCY": "3",
        "RATELIMIT_STORAGE_URI": "memory://",
    }
    result = subprocess.run(
        [
            str(BIN / "gunicorn"),
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{free_port()}",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "RATELIMIT_STORAGE_URI" in result.stdout + result.stderr


def test_the_zero_config_default_enforces_the_documented_limit_across_its_processes(tmp_path):
    # A window long enough that no machine is too slow to fill it.
    with HoardServer(var_dir=tmp_path, env_overrides={"RATE_LIMIT_ANONYMOUS": "10 per minute"}) as hoard:
        assert len(hoard.worker_pids()) == 1
        with requests.Session() as session:
            statuses = [
                session.get(f"{hoard.url}/v1/whoami", headers={"Authorization": "Bearer nope"}).status_code
                for _ in range(15)
            ]
    assert statuses == [401] * 10 + [429] * 5


def test_the_zero_config_commands_make_their_own_data_directory(tmp_path):
    """`make run` on a fresh clone: `flask db upgrade` (and gunicorn) start
    before any var/ exists; the entry point makes it."""
    var_dir = tmp_path / "fresh" / "var"
    env = {**HoardServer(var_dir=var_dir).env}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [str(BIN / "flask"), "db", "upgrade"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (var_dir / "hoard.db").is_file()


def test_two_default_servers_fit_one_postgresql():
    """Each worker pools one connection per thread plus one; two servers of a
    2-core machine's default 5 workers (the README's figures) stay inside
    PostgreSQL's default limit, leaving room for gc, migrations and psql."""
    options = Config.SQLALCHEMY_ENGINE_OPTIONS
    per_worker = options["pool_size"] + options["max_overflow"]
    assert per_worker == WORKER_THREADS + 1
    assert 2 * 5 * per_worker <= POSTGRES_MAX_CONNECTIONS - 10, per_worker
