"""`edged version` from source and from a (simulated) frozen build; the adapter registry."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from edged import __version__
from edged.adapters_registry import BUILTIN_ADAPTERS, load_adapter
from edged.build_info import build_info, version_text


def test_source_run_says_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(sys, "frozen", raising=False)
    monkeypatch.setitem(sys.modules, "_edged_build_info", None)  # makes the import fail
    info = build_info()
    assert (info.version, info.frozen, info.mode, info.git_commit) == (
        __version__,
        False,
        "source",
        None,
    )
    assert version_text() == f"edged {__version__} (source, python {info.python})"


def test_frozen_build_reports_its_generated_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    generated = types.ModuleType("_edged_build_info")
    generated.BUILT_AT = "2026-01-02T03:04:05Z"  # type: ignore[attr-defined]
    generated.GIT_COMMIT = "abc123def456"  # type: ignore[attr-defined]
    generated.MODE = "onefile"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "_edged_build_info", generated)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    text = version_text()
    assert text.startswith(f"edged {__version__} (frozen onefile, python ")
    assert text.endswith(", built 2026-01-02T03:04:05Z, commit abc123def456)")


def test_cli_version_and_dash_dash_version_agree() -> None:
    outs = [
        subprocess.run(
            [sys.executable, "-m", "edged.cli", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        for args in (["version"], ["--version"])
    ]
    assert outs[0] == outs[1] and outs[0].startswith(f"edged {__version__} (")


def test_adapter_registry_is_static_and_importable() -> None:
    for name, module in BUILTIN_ADAPTERS.items():
        assert module.startswith("edged_"), (name, module)
        assert load_adapter(name).__name__ == module
    with pytest.raises(KeyError):
        load_adapter("no-such-adapter")
