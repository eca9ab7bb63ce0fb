"""Task policies as Conductor computes them: retry delays, retry counts, WAIT times."""

from __future__ import annotations

import pytest

from edged.core.policies import (
    DEFAULT_TASKDEF,
    INT32_MAX,
    effective_taskdef,
    max_retries,
    parse_duration_s,
    parse_until_ms,
    retry_delay_s,
)


@pytest.mark.parametrize(
    ("logic", "delay", "scale", "retry_count", "expected"),
    [
        ("FIXED", 5, 1, 0, 5),
        ("FIXED", 5, 1, 7, 5),
        ("LINEAR_BACKOFF", 5, 1, 0, 5),
        ("LINEAR_BACKOFF", 5, 1, 2, 15),
        ("LINEAR_BACKOFF", 5, 3, 2, 45),
        ("EXPONENTIAL_BACKOFF", 5, 1, 0, 5),
        ("EXPONENTIAL_BACKOFF", 5, 1, 3, 40),
        ("EXPONENTIAL_BACKOFF", 1, 1, 40, INT32_MAX),  # Java int overflow -> MAX_VALUE
    ],
)
def test_retry_delay_follows_deciders_formula(
    logic: str, delay: int, scale: int, retry_count: int, expected: int
) -> None:
    taskdef = {"retryLogic": logic, "retryDelaySeconds": delay, "backoffScaleFactor": scale}
    assert retry_delay_s(taskdef, retry_count) == expected


def test_retry_delay_without_taskdef_is_zero() -> None:
    assert retry_delay_s(None, 3) == 0


def test_workflow_task_retry_count_wins_over_taskdef() -> None:
    taskdef = effective_taskdef("t", {"retryCount": 5})
    assert max_retries({}, taskdef) == 5
    assert max_retries({"retryCount": 1}, taskdef) == 1
    assert max_retries({"retryCount": 0}, taskdef) == 0
    assert max_retries({}, None) == 0


def test_effective_taskdef_has_conductor_defaults_and_keeps_registered_values() -> None:
    merged = effective_taskdef("t", {"retryCount": 0, "timeoutSeconds": 30, "ownerEmail": None})
    assert merged["name"] == "t"
    assert merged["retryCount"] == 0
    assert merged["timeoutSeconds"] == 30
    assert merged["responseTimeoutSeconds"] == DEFAULT_TASKDEF["responseTimeoutSeconds"] == 3600
    assert merged["retryDelaySeconds"] == 60
    assert "ownerEmail" not in merged  # None never overrides a default


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("30 seconds", 30),
        ("5m", 300),
        ("1h 30m", 5400),
        ("2 days", 172800),
        ("1d 2h 3m 4s", 93784),
        ("  10 secs ", 10),
    ],
)
def test_wait_durations(text: str, seconds: int) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 fortnights", "-3s", "s"])
def test_bad_wait_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration_s(text)


def test_wait_until_formats() -> None:
    assert parse_until_ms("2030-01-02 03:04 +0000") == 1893553440000
    assert parse_until_ms("2030-01-02 03:04") == 1893553440000  # no zone: UTC
    assert parse_until_ms("2030-01-02") == 1893542400000
    assert parse_until_ms("2030-01-02T03:04:00+01:00") == 1893549840000
    with pytest.raises(ValueError, match="not a date"):
        parse_until_ms("next tuesday")
