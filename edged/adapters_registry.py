"""The static list of built-in adapters.

Theory of operation: a frozen binary carries no package metadata, so adapters
cannot be discovered through entry points there.  Instead every built-in
adapter is named here, once, by the module that provides it; the PyInstaller
spec (packaging/edged.spec) reads this mapping to freeze those modules as
hidden imports, and the runtime imports them by name.  Adding an adapter is
one line: `"mqtt": "edged_mqtt"`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# adapter name -> importable module (a package under adapters/ with an edged_ prefix)
BUILTIN_ADAPTERS: dict[str, str] = {"mqtt": "edged_mqtt"}


def load_adapter(name: str) -> ModuleType:
    """Import a built-in adapter's module; KeyError for a name not listed here."""
    return importlib.import_module(BUILTIN_ADAPTERS[name])
