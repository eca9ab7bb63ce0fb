"""Fixtures for the worker-protocol tests: the integration tests' real `edged run` daemon
(tests/integration/daemon_harness.py) and its `daemon_factory` fixture, unchanged."""

from __future__ import annotations

from tests.integration.daemon_harness import Daemon, daemon_factory

__all__ = ["Daemon", "daemon_factory"]
