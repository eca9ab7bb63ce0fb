"""Execution ids: version 7 UUIDs, time-ordered, unique, parseable as Conductor's ids."""

from __future__ import annotations

import time
import uuid

from edged.ids import new_execution_id


def test_ids_are_version_7_uuids_that_sort_by_creation_time() -> None:
    first = new_execution_id()
    time.sleep(0.002)
    second = new_execution_id()
    for text in (first, second):
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert first < second  # string order is time order (lowercase hex, fixed width)
    ms = int(first.replace("-", "")[:12], 16)
    assert abs(ms - time.time() * 1000) < 60_000


def test_ids_are_unique_within_one_millisecond() -> None:
    ids = [new_execution_id() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)
