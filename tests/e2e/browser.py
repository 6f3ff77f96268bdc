"""Headless Chromium (Debian's `chromium`) driven by Playwright, for the
console's browser tests. Browsers cannot be downloaded here: Playwright is
pointed at the system binary, which .ci/run installs."""

import re
from pathlib import Path

from tests import services_env

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"


def launch(playwright):
    """Chromium from the system, or a failure under CI / a skip elsewhere."""
    if not CHROMIUM.exists():
        services_env.missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM))


def screenshot(page, name: str) -> Path:
    """A full-page PNG under var/screenshots/, for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, base_url: str, key: str) -> None:
    page.goto(f"{base_url}/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/console/$"))
