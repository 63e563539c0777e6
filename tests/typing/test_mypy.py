"""``mypy --strict`` over a user's project: it finds the installed stemlog (an
editable install is a path entry, which mypy follows) and accepts the documented
API, typed refs included, and it refuses a typed ref given the wrong params.

The two example files are copied into a folder outside this repository, so
mypy sees stemlog as a user's project would: through the installed package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent

pytestmark = pytest.mark.skipif(shutil.which("mypy") is None, reason="mypy is not installed")


def _mypy(project: Path, *files: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(project / ".mypy_cache"),
         "--no-error-summary", *files],
        cwd=project, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def test_a_user_app_type_checks_and_a_wrong_params_type_does_not(tmp_path: Path) -> None:
    for name in ("user_app.py", "wrong_params.py"):
        shutil.copy(HERE / name, tmp_path / name)
    accepted = _mypy(tmp_path, "user_app.py")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    refused = _mypy(tmp_path, "wrong_params.py")
    flagged = {line.split(":")[1] for line in refused.stdout.splitlines() if ": error:" in line}
    assert refused.returncode == 1 and flagged == {"11", "12"}, refused.stdout
