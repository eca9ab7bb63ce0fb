"""Build (or reuse) the frozen binary for the packaging tests.

`build_binary(mode)` runs packaging/build.sh, which caches the build venv and
the binary by source hash under build/packaging: the first run in a fresh
clone downloads PyInstaller and the run-time wheels and takes a minute or
two; later runs take about a second.  The path of the binary is the last line
of the script's output.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 900


def build_binary(mode: str = "onedir") -> Path:
    result = subprocess.run(
        ["bash", str(REPO / "packaging" / "build.sh"), mode],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"packaging/build.sh {mode} failed:\n{result.stderr[-4000:]}")
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.stat().st_mode & 0o111, path
    return path
