"""The task types a definition may name.

Theory of operation: `KNOWN_TASK_TYPES` starts as Conductor's `TaskType` enum
(every built-in type, checked against conductor-oss/conductor) plus edged's own
device tasks.  Adapters call `register_task_type` at import time to add theirs.
Validation takes the set as a default argument, so a type registered later is
seen by every later validation without passing it around.
"""

from __future__ import annotations

import re

from edged.errors import BadInput

# Conductor's TaskType enum, in its order.
CONDUCTOR_TASK_TYPES: tuple[str, ...] = (
    "SIMPLE",
    "DYNAMIC",
    "FORK_JOIN",
    "FORK_JOIN_DYNAMIC",
    "DECISION",
    "SWITCH",
    "JOIN",
    "DO_WHILE",
    "SUB_WORKFLOW",
    "START_WORKFLOW",
    "EVENT",
    "WAIT",
    "HUMAN",
    "USER_DEFINED",
    "HTTP",
    "LAMBDA",
    "INLINE",
    "EXCLUSIVE_JOIN",
    "TERMINATE",
    "KAFKA_PUBLISH",
    "JSON_JQ_TRANSFORM",
    "SET_VARIABLE",
    "NOOP",
)

EDGED_TASK_TYPES: tuple[str, ...] = ("MQTT_PUBLISH", "MQTT_REQUEST")

KNOWN_TASK_TYPES: set[str] = set(CONDUCTOR_TASK_TYPES) | set(EDGED_TASK_TYPES)

_TYPE_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")


def register_task_type(name: str) -> None:
    """Let definitions use task type `name` (upper-case, like Conductor's)."""
    if not isinstance(name, str) or not _TYPE_NAME.match(name):
        raise BadInput(f"task type must be UPPER_SNAKE_CASE, got {name!r}")
    KNOWN_TASK_TYPES.add(name)
