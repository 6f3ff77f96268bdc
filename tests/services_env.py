"""Where the real services are, and what to do when one is missing.

Under CI=true a missing service fails the test; elsewhere it skips it.
"""

import os
import shutil
import socket
from urllib.parse import urlparse

import pytest

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=2):
            return True
    except OSError:
        return False


def require(url: str, what: str) -> None:
    if reachable(url):
        return
    missing(f"{what} is not reachable at {url}")


def require_commands(*names: str, what: str) -> None:
    """Each named program is on PATH; else fail under CI=true, skip elsewhere."""
    absent = [name for name in names if shutil.which(name) is None]
    if not absent:
        return
    missing(f"{', '.join(absent)} not found on PATH (needed by {what})")


def missing(message: str) -> None:
    """A required tool or service is absent: fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(message + " (CI=true: a missing dependency is a failure)")
    pytest.skip(message)
