"""Task policies: retries, their delays, timeouts, WAIT durations.

Pure functions over TaskDef dicts, following Conductor's code:
DeciderService.retry for the retry decision and the delay of each retry
logic, and DateTimeUtils for WAIT's `duration` and `until` formats.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

# Conductor's TaskDef defaults (TaskDef.java), used when a work task has no
# registered definition.
DEFAULT_TASKDEF: dict[str, Any] = {
    "retryCount": 3,
    "retryLogic": "FIXED",
    "retryDelaySeconds": 60,
    "backoffScaleFactor": 1,
    "timeoutSeconds": 0,
    "timeoutPolicy": "TIME_OUT_WF",
    "responseTimeoutSeconds": 3600,
    "rateLimitPerFrequency": 0,
    "rateLimitFrequencyInSeconds": 1,
    "concurrentExecLimit": 0,
    "inputKeys": [],
    "outputKeys": [],
}

INT32_MAX = 2**31 - 1


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return default


def effective_taskdef(name: str, registered: dict[str, Any] | None) -> dict[str, Any]:
    merged = dict(DEFAULT_TASKDEF)
    merged["name"] = name
    if registered:
        merged.update({k: v for k, v in registered.items() if v is not None})
    return merged


def max_retries(wt: dict[str, Any], taskdef: dict[str, Any] | None) -> int:
    """The WorkflowTask's own retryCount wins over the TaskDef's (Conductor 3)."""
    if "retryCount" in wt and wt["retryCount"] is not None:
        return max(0, _int(wt["retryCount"]))
    if taskdef is None:
        return 0
    return max(0, _int(taskdef.get("retryCount"), 0))


def retry_delay_s(taskdef: dict[str, Any] | None, retry_count: int) -> int:
    """Delay before attempt `retry_count + 1`, as DeciderService.retry computes it."""
    if taskdef is None:
        return 0
    base = _int(taskdef.get("retryDelaySeconds"), 0)
    logic = taskdef.get("retryLogic", "FIXED")
    if logic == "LINEAR_BACKOFF":
        scale = _int(taskdef.get("backoffScaleFactor"), 1)
        delay = base * scale * (retry_count + 1)
    elif logic == "EXPONENTIAL_BACKOFF":
        delay = base * (2**retry_count)
    else:
        delay = base
    if delay < 0 or delay > INT32_MAX:  # Java int overflow becomes MAX_VALUE
        return INT32_MAX
    return delay


def seconds(taskdef: dict[str, Any] | None, key: str) -> int:
    if taskdef is None:
        return 0
    return max(0, _int(taskdef.get(key), 0))


_DURATION = re.compile(
    r"^\s*(?:(\d+)\s*(?:days?|d))?\s*(?:(\d+)\s*(?:hours?|hrs?|h))?"
    r"\s*(?:(\d+)\s*(?:minutes?|mins?|m))?\s*(?:(\d+)\s*(?:seconds?|secs?|s))?\s*$",
    re.IGNORECASE,
)


def parse_duration_s(text: str) -> int:
    """`"1d 2h 3m 4s"`, `"30 seconds"`, `"5m"` -> seconds.  ValueError if not a duration."""
    match = _DURATION.match(text)
    if not match or not any(match.groups()):
        raise ValueError(
            f"not a duration: {text!r} (expected e.g. '30s', '5m', '1h 30m', '2 days')"
        )
    days, hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + secs


_UNTIL_FORMATS = ("%Y-%m-%d %H:%M %z", "%Y-%m-%d %H:%M %Z", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def parse_until_ms(text: str) -> int:
    """Conductor's WAIT `until` formats; a time without zone is UTC."""
    text = text.strip()
    for fmt in _UNTIL_FORMATS:
        try:
            when = dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return int(when.timestamp() * 1000)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not a date: {text!r} (expected 'yyyy-MM-dd HH:mm z', 'yyyy-MM-dd HH:mm' or 'yyyy-MM-dd')"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)
