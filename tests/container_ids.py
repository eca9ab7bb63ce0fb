"""ids of every dict and list in a JSON-like value: a copy shares none with its original."""

from __future__ import annotations

from typing import Any


def container_ids(value: Any) -> list[int]:
    if isinstance(value, dict):
        return [id(value), *(i for v in value.values() for i in container_ids(v))]
    if isinstance(value, list):
        return [id(value), *(i for v in value for i in container_ids(v))]
    return []
