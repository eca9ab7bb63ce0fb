"""Conductor request envelopes: parse, type-check, normalize, or fail with paths.

Theory of operation.  Every request body and query parameter the Conductor
routes accept passes through here before the engine sees it.  Checks collect
*all* faults of a request (not just the first) as (path, message) pairs and
raise one ``InvalidRequest`` (a ``BadInput``), which the router turns into
Conductor's 400 ErrorResponse with ``validationErrors``.  What passes is
normalized: every known field present (None or Conductor's default), unknown
fields dropped, as Jackson does for Conductor (``FAIL_ON_UNKNOWN_PROPERTIES``
is off).  Messages follow Conductor's where it has one ("Workflow name cannot
be null or empty", "priority: 100 should be maximum 99").

Only envelopes are checked here; the engine validates definitions.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from edged.api.messages import Request
from edged.errors import BadInput

JsonDict = dict[str, Any]

# com.netflix.conductor.common.metadata.tasks.TaskResult.Status
TASK_RESULT_STATUSES = frozenset(
    {"IN_PROGRESS", "FAILED", "FAILED_WITH_TERMINAL_ERROR", "COMPLETED"}
)
# com.netflix.conductor.common.metadata.workflow.IdempotencyStrategy
IDEMPOTENCY_STRATEGIES = frozenset({"FAIL", "RETURN_EXISTING", "FAIL_ON_RUNNING"})

# Deeper JSON would be refused by Jackson too (its default nesting limit is
# 1000); 100 keeps edged's own recursive walks far from Python's limit.
MAX_JSON_DEPTH = 100

VALIDATION_FAILED = "Validation failed, check below errors for detail."

# Spring's StringToBooleanConverter accepts exactly these spellings.
_TRUE = frozenset({"true", "on", "yes", "1"})
_FALSE = frozenset({"false", "off", "no", "0"})


class InvalidRequest(BadInput):
    """A request envelope with one or more faults; ``faults`` holds (path, message)."""

    def __init__(self, faults: list[tuple[str, str]], message: str = VALIDATION_FAILED) -> None:
        super().__init__(message)
        self.faults = faults


def _reject_constant(name: str) -> Any:
    # JSON has no NaN or Infinity; Python's parser accepts them unless told not to.
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes, *, default: Any = None) -> Any:
    """Decode a JSON body; an empty body gives ``default`` (400 when it is None)."""
    if not body.strip():
        if default is None:
            raise InvalidRequest([("body", "request body is required")])
        return default
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        value = None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        raise InvalidRequest([("body", f"not valid JSON: {exc}")]) from None
    else:
        if _depth_within(value, MAX_JSON_DEPTH):
            return value
    raise InvalidRequest([("body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")])


def _depth_within(value: Any, limit: int) -> bool:
    # Iterative on purpose: the point is to refuse what would later blow the
    # recursion limit when the engine or the encoder walks it.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        elif not isinstance(item, list):
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in item)
    return True


def json_object(body: bytes, *, default: JsonDict | None = None) -> JsonDict:
    value = parse_json(body, default=default)
    if not isinstance(value, dict):
        raise InvalidRequest([("body", f"must be a JSON object, not {_kind(value)}")])
    return value


def json_object_list(body: bytes) -> list[JsonDict]:
    value = parse_json(body)
    if not isinstance(value, list):
        raise InvalidRequest([("body", f"must be a JSON array of objects, not {_kind(value)}")])
    faults = [
        (f"[{i}]", f"must be a JSON object, not {_kind(item)}")
        for i, item in enumerate(value)
        if not isinstance(item, dict)
    ]
    if faults:
        raise InvalidRequest(faults)
    return value


def _kind(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list():
            return "an array"
        case _:
            return "an object"


def is_unicode(text: str) -> bool:
    """False for a string holding a lone surrogate (JSON allows ``"\\ud800"``; UTF-8 does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Fields:
    """Reads typed fields from one JSON object, collecting faults as it goes."""

    def __init__(self, obj: Mapping[str, Any], prefix: str = "") -> None:
        self.obj = obj
        self.prefix = prefix
        self.faults: list[tuple[str, str]] = []

    def fault(self, key: str, message: str) -> None:
        self.faults.append((self.prefix + key, message))

    def string(self, key: str, *, required: str | None = None) -> str | None:
        value = self.obj.get(key)
        if value is None or value == "":
            if required is not None:
                self.fault(key, required)
            return None if value is None else value
        if not isinstance(value, str):
            self.fault(key, f"must be a string, not {_kind(value)}")
            return None
        if not is_unicode(value):
            # ids, names and keys become journal columns, which hold UTF-8 only
            self.fault(key, "must be valid Unicode (it holds a lone surrogate)")
            return None
        return value

    def integer(
        self,
        key: str,
        *,
        default: int | None = None,
        low: int | None = None,
        high: int | None = None,
    ) -> int | None:
        value = self.obj.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fault(key, f"must be an integer, not {_kind(value)}")
            return default
        if low is not None and value < low:
            self.fault(key, f"{key}: {value} should be minimum {low}")
        elif high is not None and value > high:
            self.fault(key, f"{key}: {value} should be maximum {high}")
        return value

    def mapping(self, key: str) -> JsonDict | None:
        value = self.obj.get(key)
        if value is None or isinstance(value, dict):
            return value
        self.fault(key, f"must be an object, not {_kind(value)}")
        return None

    def string_map(self, key: str) -> dict[str, str] | None:
        value = self.mapping(key)
        if value is None:
            return None
        for name, item in value.items():
            if not isinstance(item, str):
                self.fault(f"{key}.{name}", f"must be a string, not {_kind(item)}")
        return value

    def choice(
        self, key: str, choices: Collection[str], *, required: str | None = None
    ) -> str | None:
        value = self.string(key, required=required)
        if value and value not in choices:
            self.fault(key, f"must be one of {', '.join(sorted(choices))}, not {value!r}")
            return None
        return value

    def check(self) -> None:
        if self.faults:
            raise InvalidRequest(self.faults)


def start_workflow_request(body: bytes) -> JsonDict:
    """A StartWorkflowRequest body, normalized (see ``EngineAPI.start_workflow``)."""
    fields = Fields(json_object(body))
    request = {
        "name": fields.string("name", required="Workflow name cannot be null or empty"),
        "version": fields.integer("version", low=-(2**31), high=2**31 - 1),  # Java's int
        "correlationId": fields.string("correlationId"),
        "input": fields.mapping("input") or {},
        "taskToDomain": fields.string_map("taskToDomain") or {},
        "workflowDef": fields.mapping("workflowDef"),
        "priority": fields.integer("priority", default=0, low=0, high=99),
        "idempotencyKey": fields.string("idempotencyKey"),
        "idempotencyStrategy": fields.choice("idempotencyStrategy", IDEMPOTENCY_STRATEGIES),
    }
    fields.check()
    return request


def task_result(body: bytes) -> JsonDict:
    """A TaskResult body, normalized (see ``EngineAPI.update_task``)."""
    fields = Fields(json_object(body))
    result = {
        "workflowInstanceId": fields.string(
            "workflowInstanceId", required="Workflow Id cannot be null or empty"
        ),
        "taskId": fields.string("taskId", required="Task ID cannot be null or empty"),
        "status": fields.choice("status", TASK_RESULT_STATUSES, required="Status cannot be null"),
        "outputData": fields.mapping("outputData") or {},
        "reasonForIncompletion": fields.string("reasonForIncompletion"),
        # beyond ~68 years a timer's epoch milliseconds would not fit the journal's integers
        "callbackAfterSeconds": fields.integer(
            "callbackAfterSeconds", default=0, low=0, high=2**31 - 1
        ),
        "logs": _task_logs(fields),
        "workerId": fields.string("workerId"),
        "extendLease": fields.obj.get("extendLease") is True,
    }
    if not isinstance(fields.obj.get("extendLease", False), bool | None):
        fields.fault("extendLease", "must be a boolean")
    fields.check()
    return result


def _task_logs(fields: Fields) -> list[JsonDict]:
    value = fields.obj.get("logs")
    if value is None:
        return []
    if not isinstance(value, list):
        fields.fault("logs", f"must be an array, not {_kind(value)}")
        return []
    logs: list[JsonDict] = []
    for i, item in enumerate(value):
        if isinstance(item, str):  # lenient: a bare line is a log entry
            logs.append({"log": item})
        elif isinstance(item, dict) and isinstance(item.get("log", ""), str):
            logs.append(item)
        else:
            fields.fault(f"logs[{i}]", "must be an object with a string 'log'")
    return logs


def rerun_request(body: bytes) -> JsonDict:
    fields = Fields(json_object(body, default={}))
    request = {
        "reRunFromWorkflowId": fields.string("reRunFromWorkflowId"),
        "workflowInput": fields.mapping("workflowInput"),
        "reRunFromTaskId": fields.string("reRunFromTaskId"),
        "taskInput": fields.mapping("taskInput"),
        "correlationId": fields.string("correlationId"),
    }
    fields.check()
    return request


def skip_task_request(body: bytes) -> JsonDict:
    # Conductor binds SkipTaskRequest without @RequestBody, so clients send
    # either nothing or a JSON body; both are accepted.
    fields = Fields(json_object(body, default={}))
    request = {"taskInput": fields.mapping("taskInput"), "taskOutput": fields.mapping("taskOutput")}
    fields.check()
    return request


def task_status(value: str) -> str:
    if value not in TASK_RESULT_STATUSES:
        choices = ", ".join(sorted(TASK_RESULT_STATUSES))
        raise InvalidRequest([("status", f"must be one of {choices}, not {value!r}")])
    return value


# -- query parameters -------------------------------------------------------


def bool_param(request: Request, name: str, default: bool) -> bool:
    value = request.query_value(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidRequest([(name, f"must be true or false, not {value!r}")])


def int_param(
    request: Request,
    name: str,
    default: int | None,
    *,
    low: int | None = None,
    high: int | None = None,
) -> int | None:
    value = request.query_value(name)
    if value is None or value == "":
        return default
    return int_value(name, value, low=low, high=high)


def int_value(name: str, value: str, *, low: int | None = None, high: int | None = None) -> int:
    text = value.strip()
    # isdecimal() alone admits other scripts' digits; Java's Integer.parseInt does not.
    digits = text[1:] if text[:1] in ("-", "+") else text
    if not (digits.isascii() and digits.isdecimal()) or len(digits) > 10:
        raise InvalidRequest([(name, f"must be an integer, not {value!r}")])
    number = int(text)
    if low is not None and number < low:
        raise InvalidRequest([(name, f"{name}: {number} should be minimum {low}")])
    if high is not None and number > high:
        raise InvalidRequest([(name, f"{name}: {number} should be maximum {high}")])
    return number
