"""The shell scripts CI and the README run are valid shell.

`make test` does not run `.ci/run` itself, so a script broken by a merge
would pass every other test here and fail CI after 0 s.
"""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = [ROOT / ".ci" / "run"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_script_parses_and_calls_make_test(script):
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    lines = [line.strip() for line in script.read_text().splitlines()]
    assert lines[0] == "#!/usr/bin/env bash"
    # CI proves the README: the script's last command is the suite itself.
    assert [line for line in lines if line and not line.startswith("#")][-1] == "make test"
