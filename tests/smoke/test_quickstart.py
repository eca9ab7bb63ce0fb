"""The README's quickstart, end to end: real daemon subprocess on embedded defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_demo_completes(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), EDGED_DEMO_LOG="1")
    env.pop("STATE_DIRECTORY", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples/quickstart/demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "workflow COMPLETED" in done.stdout
    assert '"action": "open vents"' in done.stdout
    assert "edged stopped (exit 0)" in done.stdout
    # embedded defaults put the journal under the user's state directory
    assert (tmp_path / "state" / "edged" / "journal.db").exists()
