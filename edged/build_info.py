"""Version and build information for `edged version` / `edged --version`.

Theory of operation: a source checkout knows only its version.  The packaging
build (packaging/build.sh) generates a module `_edged_build_info` (never
committed; it lives in the build directory) holding the build time, the git
commit and the PyInstaller mode, and freezes it into the binary.  At run time
this module imports it if present; a source run simply has no build facts.
Nothing here touches the network or package metadata, so it works the same in
a frozen binary that has no dist-info at all.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

from edged import __version__


@dataclass(frozen=True, slots=True)
class BuildInfo:
    version: str
    python: str
    frozen: bool
    mode: str  # "onedir", "onefile" or "source"
    built_at: str | None  # ISO 8601 UTC, from the build machine's clock
    git_commit: str | None


def build_info() -> BuildInfo:
    frozen = bool(getattr(sys, "frozen", False))
    built_at: str | None = None
    git_commit: str | None = None
    mode = "source"
    try:
        generated = importlib.import_module("_edged_build_info")
    except ImportError:
        generated = None
    if generated is not None:
        built_at = getattr(generated, "BUILT_AT", None)
        git_commit = getattr(generated, "GIT_COMMIT", None)
        mode = str(getattr(generated, "MODE", "onedir")) if frozen else "source"
    return BuildInfo(
        version=__version__,
        python=sys.version.split()[0],
        frozen=frozen,
        mode=mode,
        built_at=built_at,
        git_commit=git_commit,
    )


def version_text() -> str:
    """One line, e.g. `edged 0.1.0 (frozen onedir, python 3.11.7, built ..., commit abc1234)`."""
    info = build_info()
    parts = [f"frozen {info.mode}" if info.frozen else "source", f"python {info.python}"]
    if info.built_at:
        parts.append(f"built {info.built_at}")
    if info.git_commit:
        parts.append(f"commit {info.git_commit}")
    return f"edged {info.version} ({', '.join(parts)})"
