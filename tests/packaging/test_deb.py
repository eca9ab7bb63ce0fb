"""The .deb from packaging/build-deb.sh: contents, control fields, a runnable binary.

Builds (or reuses) the one-folder binary, packs it, and inspects the result
with dpkg-deb: every promised path is there, the architecture is this host's
dpkg architecture, /etc/edged/edged.yaml is a conffile and is a valid config,
the maintainer scripts are valid sh, and the binary runs from an extracted
tree through the /usr/bin/edged symlink.  lintian runs where it is installed
(it is ~140 packages, so the test setup does not install it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from binary_build import BUILD_TIMEOUT_S, REPO

from edged.config import load_config


@pytest.fixture(scope="module")
def deb() -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed (not a Debian system)")
    result = subprocess.run(
        ["bash", str(REPO / "packaging" / "build-deb.sh")],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
        env={**os.environ, "EDGED_DEB_COMPRESSION": "gzip"},  # xz takes ~20 s more
    )
    assert result.returncode == 0, result.stderr[-4000:]
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.is_file(), path
    return path


def dpkg_deb(*args: str) -> str:
    return subprocess.run(
        ["dpkg-deb", *args], capture_output=True, text=True, timeout=120, check=True
    ).stdout


def test_contents(deb: Path) -> None:
    listing = dpkg_deb("-c", str(deb))
    entries = {line.split()[5].removeprefix("."): line for line in listing.splitlines()}
    for path in (
        "/usr/lib/edged/edged",
        "/lib/systemd/system/edged.service",
        "/etc/edged/edged.yaml",
        "/usr/share/doc/edged/copyright",
        "/usr/share/doc/edged/changelog.Debian.gz",
    ):
        assert path in entries, path
    assert entries["/usr/bin/edged"].startswith("lrwxrwxrwx")
    assert listing.count("-> ../lib/edged/edged") == 1
    assert entries["/usr/lib/edged/edged"].startswith("-rwxr-xr-x root/root")
    # owned by root whoever built it; nothing from the test tools frozen in
    assert all(" root/root " in line for line in listing.splitlines())
    assert not [line for line in listing.splitlines() if "hypothesis" in line or "pytest" in line]


def test_control(deb: Path) -> None:
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert deb.name.endswith(f"_{arch}.deb")
    fields = dict(
        line.split(": ", 1)
        for line in dpkg_deb("-f", str(deb)).splitlines()
        if ": " in line and not line.startswith(" ")
    )
    assert fields["Package"] == "edged"
    assert fields["Architecture"] == arch
    assert "adduser" in fields["Depends"]
    assert int(fields["Installed-Size"]) > 1000


def test_conffile_and_maintainer_scripts(deb: Path, tmp_path: Path) -> None:
    control = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(control)], check=True, timeout=60)
    assert (control / "conffiles").read_text().split() == ["/etc/edged/edged.yaml"]
    for script in ("postinst", "prerm", "postrm"):
        path = control / script
        assert os.access(path, os.X_OK), script
        subprocess.run(["sh", "-n", str(path)], check=True, timeout=10)
    postinst = (control / "postinst").read_text()
    assert "adduser --system" in postinst and "deb-systemd-helper" in postinst
    # systemctl only with a running systemd, so installs into chroots and images work
    assert "[ -d /run/systemd/system ]" in postinst


def test_extracted_binary_runs_and_default_config_loads(deb: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=120)
    cfg = load_config(str(root / "etc" / "edged" / "edged.yaml"))
    assert (cfg.host, cfg.port) == ("127.0.0.1", 8080)
    out = subprocess.run(
        [str(root / "usr" / "bin" / "edged"), "version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout
    assert "frozen onedir" in out


@pytest.mark.skipif(shutil.which("lintian") is None, reason="lintian is not installed")
def test_lintian_reports_no_errors(deb: Path) -> None:
    result = subprocess.run(
        ["lintian", "--no-tag-display-limit", str(deb)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(result.stdout)
    errors = [line for line in result.stdout.splitlines() if line.startswith("E:")]
    assert not errors, result.stdout
