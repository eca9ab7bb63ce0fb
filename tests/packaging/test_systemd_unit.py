"""systemd/edged.service passes `systemd-analyze verify` with no output at all.

`verify` exits 0 on unknown keys and bad values, so any output is a failure.
It also insists that ExecStart's program exists; where /usr/bin/edged is not
installed (CI), the copy under test points ExecStart at an executable stub in
tmp_path and keeps every other line as shipped.  `security --offline=true`
scores the unit without a running systemd; the exposure must stay "OK" (<= 2.0).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from binary_build import REPO

UNIT = REPO / "systemd" / "edged.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)"
)


def unit_copy(tmp_path: Path) -> Path:
    text = UNIT.read_text()
    if not Path("/usr/bin/edged").exists():
        stub = tmp_path / "bin" / "edged"
        stub.parent.mkdir()
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
        text, count = re.subn(r"^ExecStart=/usr/bin/edged ", f"ExecStart={stub} ", text, flags=re.M)
        assert count == 1
    copy = tmp_path / "edged.service"
    copy.write_text(text)
    return copy


def test_unit_has_the_promised_settings() -> None:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    assert settings["Type"] == ["notify"]
    assert settings["ExecStart"] == ["/usr/bin/edged run --config /etc/edged/edged.yaml"]
    assert settings["Restart"] == ["on-failure"]
    # bad configuration is not retried: its exit code is the CLI's "bad input"
    from edged.cli import EXIT_BAD_INPUT

    assert settings["RestartPreventExitStatus"] == [str(EXIT_BAD_INPUT)]
    assert settings["User"] == ["edged"]
    assert settings["CapabilityBoundingSet"] == [""] and settings["AmbientCapabilities"] == [""]
    for key in ("ProtectSystem", "ProtectHome", "PrivateTmp", "NoNewPrivileges", "WatchdogSec"):
        assert key in settings, key
    assert settings["ProtectSystem"] == ["strict"]
    assert set(settings["SupplementaryGroups"][0].split()) == {"dialout", "video"}
    for key in ("StateDirectory", "ConfigurationDirectory", "LogsDirectory"):
        assert settings[key] == ["edged"]
    # the daemon's default grace period must end well inside the stop timeout
    from edged.config import Config

    stop_s = int(settings["TimeoutStopSec"][0].removesuffix("s"))
    assert Config(data_dir=Path("/x")).shutdown_grace_s * 2 <= stop_s


@needs_analyze
def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "verify", "--man=no", str(unit_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_analyze
def test_systemd_analyze_verify_catches_a_typo(tmp_path: Path) -> None:
    # proves the silence above means something: a misspelt key is reported
    assert ANALYZE is not None
    copy = unit_copy(tmp_path)
    copy.write_text(copy.read_text().replace("ProtectHome=yes", "ProtectHomme=yes"))
    result = subprocess.run(
        [ANALYZE, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "ProtectHomme" in result.stdout + result.stderr


@needs_analyze
def test_security_exposure_is_ok(tmp_path: Path) -> None:
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", str(unit_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for edged.service: ([\d.]+)", result.stdout)
    if match is None:
        pytest.skip(f"systemd-analyze security cannot score offline here: {result.stderr[:200]}")
    exposure = float(match.group(1))
    print(f"systemd-analyze security exposure: {exposure}")
    assert exposure <= 2.0
