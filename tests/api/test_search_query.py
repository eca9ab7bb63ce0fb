"""The search parameter parser: Conductor's query subset, sort, freeText, paging bounds."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edged.api.search_query import (
    MAX_IN_VALUES,
    parse_free_text,
    parse_query,
    parse_sort,
    search_request,
)
from edged.api.shapes import InvalidRequest
from edged.journal.search import Condition, SortKey


def test_conductor_example_query() -> None:
    got = parse_query("workflowType IN (a,b) AND status IN (RUNNING) AND startTime > 123")
    assert got == (
        Condition("workflowType", "IN", ("a", "b")),
        Condition("status", "IN", ("RUNNING",)),
        Condition("startTime", ">", (123,)),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("*", ()),
        ("status=COMPLETED", (Condition("status", "=", ("COMPLETED",)),)),
        ("status != PAUSED", (Condition("status", "!=", ("PAUSED",)),)),
        ('correlationId = "a b=c"', (Condition("correlationId", "=", ("a b=c",)),)),
        ("correlationId='it''s'", None),  # two quoted values: a fault
        (r'workflowId = "q\"x"', (Condition("workflowId", "=", ('q"x',)),)),
        ("version>=2 and version<=3", (Condition("version", ">=", (2,)), Condition("version", "<=", (3,)))),
        ("(status = RUNNING) AND (workflowType IN (x))", (Condition("status", "=", ("RUNNING",)), Condition("workflowType", "IN", ("x",)))),
        ("endTime < 2024-01-01T00:00:00Z", (Condition("endTime", "<", (1704067200000,)),)),
        ("updateTime > 2024-01-01", (Condition("updateTime", ">", (1704067200000,)),)),
    ],
)  # fmt: skip
def test_accepted_forms(text: str, expected: tuple[Condition, ...] | None) -> None:
    if expected is None:
        with pytest.raises(InvalidRequest):
            parse_query(text)
    else:
        assert parse_query(text) == expected


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("foo = 1", 0, "unknown field 'foo'"),
        ("status = RUNNIN", 9, "not a workflow status"),
        ("status = RUNNING AND", 20, "expected a field name, found the end"),
        ("status RUNNING", 7, "expected an operator after status"),
        ("workflowType IN (a, b", 21, "expected ')'"),
        ("workflowType IN a", 16, "expected '('"),
        ("workflowType > a", 13, "supports =, != and IN"),
        ("startTime > soon", 12, "epoch milliseconds or ISO 8601"),
        ("startTime > 99999999999999999999", 12, "out of range"),
        ("version = 1.5", 10, "must be an integer"),
        ('correlationId = "abc', 16, "unterminated quoted value"),
        ("status = RUNNING OR status = FAILED", 17, "OR is not supported"),
        ("status = RUNNING status = FAILED", 17, "expected AND or the end"),
        ("status = ", 9, "expected a value for status"),
        ("status == RUNNING", 8, "expected a value"),
        ("(status = RUNNING", 17, "expected ')'"),
        ("status = RUNNING)", 16, "expected AND or the end"),
        ("status = RUNNING ; DROP TABLE executions", 17, "found ';'"),
    ],
)  # fmt: skip
def test_faults_name_the_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_query(text)
    [(path, message)] = caught.value.faults
    assert path == "query"
    assert message.startswith(f"at position {position}: "), message
    assert fragment in message, message


def test_bounds() -> None:
    values = ",".join(f"v{i}" for i in range(MAX_IN_VALUES + 1))
    with pytest.raises(InvalidRequest) as caught:
        parse_query(f"workflowId IN ({values})")
    assert "more than" in caught.value.faults[0][1]
    with pytest.raises(InvalidRequest):
        parse_query(" AND ".join(["status = RUNNING"] * 33))
    with pytest.raises(InvalidRequest):
        parse_query("workflowId = " + "x" * 5000)
    deep = "(" * 9 + "status = RUNNING" + ")" * 9
    with pytest.raises(InvalidRequest) as caught:
        parse_query(deep)
    assert "nested too deeply" in caught.value.faults[0][1]


def test_sort_forms_and_faults() -> None:
    assert parse_sort(["startTime:DESC"]) == (SortKey("startTime", True),)
    assert parse_sort(["workflowId", "status:asc"]) == (
        SortKey("workflowId", False),
        SortKey("status", False),
    )
    assert parse_sort(["startTime:DESC;workflowType"]) == (
        SortKey("startTime", True),
        SortKey("workflowType", False),
    )
    for bad in ["name:DESC", "startTime:SIDEWAYS", ";".join(["status"] * 9)]:
        with pytest.raises(InvalidRequest) as caught:
            parse_sort([bad])
        assert caught.value.faults[0][0] == "sort"


def test_free_text_terms() -> None:
    assert parse_free_text(None) == ()
    assert parse_free_text("*") == ()
    assert parse_free_text("  ") == ()
    assert parse_free_text("*abc* def") == ("abc", "def")
    with pytest.raises(InvalidRequest):
        parse_free_text(" ".join(["t"] * 17))
    with pytest.raises(InvalidRequest):
        parse_free_text("x" * 257)


def test_paging_bounds_are_reported_together() -> None:
    with pytest.raises(InvalidRequest) as caught:
        search_request(query=None, free_text=None, sort=[], start=-1, size=1001)
    assert [path for path, _ in caught.value.faults] == ["start", "size"]
    ok = search_request(query="status=RUNNING", free_text="*", sort=[], start=5, size=0)
    assert ok.start == 5 and ok.size == 0 and ok.free_text == ()


_POSITION = re.compile(r"^at position (\d+): ")
_WORDS = [
    "status",
    "AND",
    "IN",
    "OR",
    "RUNNING",
    "startTime",
    "workflowType",
    "12",
    "x",
    "é",
    "\x00",
]
_ALPHABET = st.sampled_from([*"()=<>!,'\"\\ *-:.", *_WORDS])


@given(st.lists(_ALPHABET, max_size=25).map(" ".join) | st.text(max_size=60))
def test_any_text_parses_or_faults_with_a_position_inside_it(text: str) -> None:
    try:
        conditions = parse_query(text)
    except InvalidRequest as exc:
        [(path, message)] = exc.faults
        match = _POSITION.match(message)
        assert path == "query" and match, message
        assert 0 <= int(match.group(1)) <= len(text)
    else:
        assert all(isinstance(c, Condition) and c.values for c in conditions)


def test_search_by_tasks_splits_task_conditions_and_free_text() -> None:
    got = search_request(
        query="workflowType = a AND status IN (FAILED, TIMED_OUT) AND taskDefName = t",
        free_text="*mail* x",
        sort=["startTime:DESC"],
        start=0,
        size=10,
        by_tasks=True,
    )
    assert got.conditions == (Condition("workflowType", "=", ("a",)),)
    assert got.task_conditions == (
        Condition("status", "IN", ("FAILED", "TIMED_OUT")),
        Condition("taskDefName", "=", ("t",)),
    )
    assert got.task_text == ("mail", "x") and got.free_text == ()
    assert got.by_tasks and got.sort == (SortKey("startTime", True),)
    assert not search_request(
        query=None, free_text="*", sort=[], start=0, size=1, by_tasks=True
    ).by_tasks


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("status = RUNNING", "at position 9: 'RUNNING' is not a task status"),
        ("taskId < 3", "at position 7: taskId supports =, != and IN"),
        ("nope = 1", "known fields: workflowType, workflowId"),
    ],
)
def test_search_by_tasks_faults(text: str, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_query(text, by_tasks=True)
    [(path, message)] = info.value.faults
    assert path == "query" and fragment in message
