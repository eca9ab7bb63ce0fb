"""Fixtures for the worker-protocol tests: the integration tests' real `edged run` daemon.

tests/integration/conftest.py is loaded under its own module name (test
directories here are not packages, and several hold a `conftest`), and its
`daemon_factory` fixture is offered here unchanged.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "integration" / "conftest.py"
_spec = importlib.util.spec_from_file_location("edged_integration_conftest", _PATH)
assert _spec is not None and _spec.loader is not None
integration = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = integration
_spec.loader.exec_module(integration)

Daemon = integration.Daemon
daemon_factory = integration.daemon_factory
