"""The CLI's SSE parser (sans-I/O) and its text rendering, without a daemon."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edged.client.render import Progress, event_lines, summary_table
from edged.client.transport import ApiError, SseEvent, SseParser

STREAM = (
    b"retry: 2000\n\n"
    b": keep-alive\n\n"
    b'id: 1\nevent: WorkflowStarted\ndata: {"a":1}\n\n'
    b"id: 2\r\nevent: TaskLogged\r\ndata: line one\r\ndata: line two\r\n\r\n"
    b"id: 3\revent: cr\rdata:no space\r\r"
    b"data: no event name\n\n"
    b"id: bad\0id\nevent: x\ndata: y\n\n"
)
EXPECTED = [
    SseEvent("WorkflowStarted", '{"a":1}', "1"),
    SseEvent("TaskLogged", "line one\nline two", "2"),
    SseEvent("cr", "no space", "3"),
    SseEvent("message", "no event name", "3"),
    SseEvent("x", "y", "3"),  # an id with NUL is ignored, as the standard says
]


def test_parses_a_whole_stream() -> None:
    parser = SseParser()
    assert parser.feed(STREAM) == EXPECTED
    assert parser.last_id == "3"


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), unique=True))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    parser = SseParser()
    events = []
    start = 0
    for cut in [*sorted(cuts), len(STREAM)]:
        events += parser.feed(STREAM[start:cut])
        start = cut
    assert events == EXPECTED


def test_byte_at_a_time() -> None:
    parser = SseParser()
    events = [e for i in range(len(STREAM)) for e in parser.feed(STREAM[i : i + 1])]
    assert events == EXPECTED


def test_an_endless_line_is_refused() -> None:
    parser = SseParser()
    with pytest.raises(ApiError, match="too long"):
        for _ in range(300):
            parser.feed(b"data: " + b"x" * 65536)


def doc(kind: str, **data: object) -> dict[str, object]:
    return {
        "id": 1,
        "workflowId": "wf-1",
        "workflowName": "pump",
        "atMs": 1_700_000_000_123,
        "kind": kind,
        "data": data,
    }


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (doc("WorkflowStarted", name="pump", version=2), "workflow started: pump v2"),
        (doc("TaskScheduled", ref="fill", type="SIMPLE", name="fill"), "[fill] scheduled SIMPLE"),
        (
            doc("TaskScheduled", ref="fill", type="SIMPLE", name="x", retryOf="t"),
            "[fill] scheduled SIMPLE x (retry)",
        ),
        (
            doc("TaskStatusChanged", ref="fill", status="IN_PROGRESS", workerId="w7"),
            "[fill] IN_PROGRESS by w7",
        ),
        (
            doc("TaskStatusChanged", ref="fill", status="FAILED", reason="dry"),
            "[fill] FAILED  (dry)",
        ),
        (
            doc("WorkflowStatusChanged", status="TERMINATED", reason="stop"),
            "workflow TERMINATED  (stop)",
        ),
        (doc("TaskTimeoutAlert", ref="fill", taskId="t"), '[fill] TaskTimeoutAlert {"taskId":"t"}'),
    ],
)
def test_event_lines(event: dict[str, object], expected: str) -> None:
    (line,) = event_lines(event)
    assert line.endswith(expected), line
    assert line[:12].count(":") == 2 and line[8] == "."  # HH:MM:SS.mmm


def test_log_lines_and_hostile_documents() -> None:
    lines = event_lines(doc("TaskLogged", ref="fill", logs=["one", "two"]))
    assert [line.split("  ", 1)[1] for line in lines] == ["[fill] | one", "[fill] | two"]
    assert event_lines({"kind": "WorkflowStarted", "data": "not a dict"})  # no crash
    assert event_lines({})


def test_progress_counts_tasks() -> None:
    progress = Progress("0123456789")
    progress.update(doc("TaskScheduled", ref="a", taskId="t1"))
    progress.update(doc("TaskScheduled", ref="b", taskId="t2"))
    progress.update(doc("TaskStatusChanged", ref="a", taskId="t1", status="IN_PROGRESS"))
    assert "tasks 0/2 done" in progress.line()
    progress.update(doc("TaskStatusChanged", ref="a", taskId="t1", status="COMPLETED"))
    progress.update(doc("WorkflowStatusChanged", status="FAILED"))
    line = progress.line()
    assert line.startswith("01234567 FAILED") and "tasks 1/2 done  a COMPLETED" in line


def test_summary_table_from_search_results() -> None:
    results = [
        {"workflowId": "w1", "workflowType": "pump", "version": 3, "status": "COMPLETED",
         "startTime": "2026-11-27T10:00:00.000Z", "endTime": "2026-11-27T10:00:01.500Z", "executionTime": 1500},
        {"workflowId": "w2", "workflowType": "pump", "version": 3, "status": "RUNNING",
         "startTime": "2026-11-27T10:00:02.000Z"},
    ]  # fmt: skip
    lines = summary_table(results, total=5).splitlines()
    assert lines[0].split() == ["ID", "NAME", "VER", "STATUS", "STARTED", "DURATION"]
    assert lines[1].split() == [
        "w1",
        "pump",
        "3",
        "COMPLETED",
        "2026-11-27T10:00:00.000Z",
        "1.50",
        "s",
    ]
    assert lines[2].split()[-1] == "-"
    assert lines[-1] == "(2 of 5 shown)"
    assert json.loads(json.dumps(results)) == results  # rendering does not touch its input
