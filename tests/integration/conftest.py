"""Fixtures of the integration tests; the harness itself is daemon_harness.py.

Every test directory that needs a real `edged run` imports
`tests.integration.daemon_harness` by that one name: a module called `conftest`
would be ambiguous in a whole-suite run (each test directory has one).
"""

from tests.integration.daemon_harness import daemon_factory

__all__ = ["daemon_factory"]
