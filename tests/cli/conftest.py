"""Fixtures of the CLI tests: one real daemon per module (see watch_daemon.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from watch_daemon import make_daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One daemon shared by a module's tests (start-up is the slow part)."""
    d = make_daemon(tmp_path_factory.mktemp("daemon"))
    yield d
    d.kill()
