"""The `conductor` fixture: a real engine on a real journal, driven like Conductor's specs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from harness import Conductor, need_fixtures, open_conductor

need_fixtures()


@pytest.fixture
async def conductor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Conductor]:
    async with open_conductor(tmp_path, monkeypatch) as c:
        yield c
