"""The `triggers` block of a workflow definition (an edged extension): checked with paths.

Theory of operation: a pure check, no adapter imported, so `edged validate` and the
definition API report trigger faults like any other (`triggers[0].mode: ...`). The MQTT
adapter runs the rules (adapters/edged_mqtt/triggers.py); the config file's `mqtt.triggers`
list uses the same shape plus `workflow` (the definition to start). One rule::

    {"name": "echo",                 # unique per definition; part of the derived ids
     "type": "MQTT",                 # the only kind so far (default)
     "topic": "bench/in",            # filter; + and # wildcards
     "qos": 1,                       # 0 or 1 (default 1)
     "decode": "json",               # json | text | bytes | cloudevents | auto (default json)
     "condition": "$.payload.t > 30",  # JavaScript over {payload, topic, ...}; optional
     "input": {"reading": "${payload.t}", "from": "${topic}"},  # default: the payload
     "identity": "payload.id",       # a field path, or "cloudevents" (id + source); optional
     "mode": "parallel",             # single | queued | parallel | restart (default parallel)
     "max": 1000,                    # running (parallel), waiting (queued) at most
     "correlationId": "${topic}"}    # optional
"""

from __future__ import annotations

import re
from typing import Any

from edged.defs.faults import Fault, child, type_name

TRIGGER_KEYS = frozenset(
    [
        "name",
        "type",
        "topic",
        "qos",
        "decode",
        "condition",
        "input",
        "identity",
        "mode",
        "max",
        "correlationId",
        "workflow",
        "version",
        "description",
        "enabled",
    ]
)
TRIGGER_TYPES = ("MQTT",)
DECODINGS = ("json", "text", "bytes", "cloudevents", "auto")
MODES = ("single", "queued", "parallel", "restart")
_PATH = re.compile(r"[A-Za-z_$][\w$-]*(\.[A-Za-z_$][\w$-]*|\[\d+\])*\Z")


def check_topic_filter(topic: str) -> str | None:
    """The MQTT filter rules: not empty, no NUL, `#` last and alone, `+` alone in a level."""
    if not topic:
        return "empty topic filter"
    if len(topic.encode("utf-8", "replace")) > 65535:
        return "topic filter longer than 65535 bytes"
    if "\0" in topic:
        return "topic filter contains NUL"
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level and the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None


def validate_triggers(value: Any, path: str, *, standalone: bool = False) -> list[Fault]:
    """Every fault of a `triggers` list at `path` (standalone: config rules, which name
    their `workflow`)."""
    faults: list[Fault] = []
    if value is None:
        return faults
    if not isinstance(value, list):
        return [Fault(path, f"expected an array of trigger rules, got {type_name(value)}")]
    names: dict[str, str] = {}
    for i, rule in enumerate(value):
        here = child(path, i)
        if not isinstance(rule, dict):
            faults.append(Fault(here, f"a trigger rule must be an object, got {type_name(rule)}"))
            continue
        for key in rule:
            if key not in TRIGGER_KEYS:
                faults.append(Fault(child(here, str(key)), "unknown trigger key"))
        name = rule.get("name", f"trigger{i}")
        if not isinstance(name, str) or not name:
            faults.append(Fault(child(here, "name"), "expected a non-empty string"))
        elif name in names:
            faults.append(
                Fault(child(here, "name"), f"duplicate trigger name (also {names[name]})")
            )
        else:
            names[name] = here
        kind = rule.get("type", "MQTT")
        if kind not in TRIGGER_TYPES:
            faults.append(Fault(child(here, "type"), f"expected one of {', '.join(TRIGGER_TYPES)}"))
        topic = rule.get("topic")
        if not isinstance(topic, str):
            faults.append(Fault(child(here, "topic"), "missing: a topic filter string"))
        else:
            problem = check_topic_filter(topic)
            if problem:
                faults.append(Fault(child(here, "topic"), problem))
        qos = rule.get("qos", 1)
        if qos not in (0, 1) or isinstance(qos, bool):
            faults.append(Fault(child(here, "qos"), f"expected 0 or 1, got {qos!r}"))
        for key, choices in (("decode", DECODINGS), ("mode", MODES)):
            got = rule.get(key)
            if got is not None and got not in choices:
                faults.append(Fault(child(here, key), f"expected one of {', '.join(choices)}"))
        limit = rule.get("max")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            faults.append(Fault(child(here, "max"), "expected a positive integer"))
        for key in ("condition", "correlationId", "description"):
            got = rule.get(key)
            if got is not None and not isinstance(got, str):
                faults.append(Fault(child(here, key), f"expected a string, got {type_name(got)}"))
        identity = rule.get("identity")
        if identity is not None and (
            not isinstance(identity, str)
            or (identity != "cloudevents" and not _PATH.match(identity))
        ):
            faults.append(
                Fault(
                    child(here, "identity"),
                    "expected 'cloudevents' or a field path like payload.id",
                )
            )
        if "enabled" in rule and not isinstance(rule["enabled"], bool):
            faults.append(Fault(child(here, "enabled"), "expected a boolean"))
        workflow = rule.get("workflow")
        if standalone and not isinstance(workflow, str):
            faults.append(Fault(child(here, "workflow"), "missing: the workflow name to start"))
        elif not standalone and workflow is not None:
            faults.append(
                Fault(
                    child(here, "workflow"),
                    "only config rules name a workflow; here it is this one",
                )
            )
    return faults
