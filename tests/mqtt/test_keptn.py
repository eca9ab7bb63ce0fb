"""The Keptn task lifecycle state machine: Keptn's completion rule, result mapping,
duplicates, out-of-order answers, the start timeout, and ids across attempts."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edged_mqtt.cloudevents import CloudEvent, decode_structured, encode_structured
from edged_mqtt.keptn import (
    KeptnTask,
    Kind,
    Phase,
    answer,
    event_type,
    keptn_context,
    parse_type,
    triggered_id,
)

WF = "0b7d5c1e-8f14-4e49-9a55-3c1d2f6a7b80"
_ids = itertools.count()


def make(start_timeout_s: float = 30.0, attempt: int = 0) -> tuple[KeptnTask, CloudEvent]:
    task = KeptnTask(
        task="backup",
        task_id="t-1",
        attempt=attempt,
        workflow_id=WF,
        source="edged/gw",
        created_ms=1_000,
        start_timeout_s=start_timeout_s,
    )
    return task, task.triggered_event({"path": "/data"})


def reply(triggered: CloudEvent, kind: Kind, worker: str = "w1", **data: Any) -> CloudEvent:
    return answer(triggered, kind, source=worker, event_id=f"ev-{next(_ids)}", data=data)


def test_types_and_ids() -> None:
    assert event_type("backup", Kind.STATUS_CHANGED) == "sh.keptn.event.backup.status.changed"
    assert parse_type("sh.keptn.event.a.b.finished") == ("a.b", Kind.FINISHED)
    assert parse_type("sh.keptn.event.x.status.changed") == ("x", Kind.STATUS_CHANGED)
    assert parse_type("sh.keptn.event..finished") is None
    assert parse_type("sh.keptn.event.finished") is None
    assert parse_type("com.example.finished") is None
    # same task and attempt: same id (a redelivery dedupes); next attempt: a new one
    assert triggered_id("t-1", 0) == triggered_id("t-1", 0) != triggered_id("t-1", 1)
    assert keptn_context(WF) == WF
    assert keptn_context("not-a-uuid") == keptn_context("not-a-uuid") != "not-a-uuid"


def test_triggered_event_is_stable_bytes() -> None:
    _task, triggered = make()
    again = KeptnTask("backup", "t-1", 0, WF, "edged/gw", created_ms=99).triggered_event(
        {"path": "/data"}
    )
    assert encode_structured(triggered) == encode_structured(again)
    assert triggered.type == "sh.keptn.event.backup.triggered"
    assert triggered.extensions["shkeptncontext"] == WF
    assert triggered.data == {
        "path": "/data",
        "project": "edged",
        "stage": "edge",
        "service": "backup",
    }
    assert "triggeredid" not in triggered.extensions  # Keptn: not on triggered events


def test_one_worker_pass() -> None:
    task, trig = make()
    assert task.on_event(reply(trig, Kind.STARTED), 2_000).log == ("w1: started",)
    assert task.phase is Phase.RUNNING and task.deadline_ms is None
    progress = task.on_event(reply(trig, Kind.STATUS_CHANGED, message="50%"), 2_500)
    assert progress.log == ("w1: 50%",) and progress.status is None
    done = task.on_event(
        reply(trig, Kind.FINISHED, result="pass", status="succeeded", size=42), 3_000
    )
    assert done.status == "COMPLETED"
    assert done.output["size"] == 42 and done.output["result"] == "pass"
    assert done.output["workers"] == {
        "w1": {"result": "pass", "status": "succeeded", "message": ""}
    }
    assert "project" not in done.output
    assert task.phase is Phase.DONE


def test_keptn_rule_waits_for_every_started_worker() -> None:
    task, trig = make()
    task.on_event(reply(trig, Kind.STARTED, "w1"), 2_000)
    task.on_event(reply(trig, Kind.STARTED, "w2"), 2_000)
    first = task.on_event(
        reply(trig, Kind.FINISHED, "w1", result="pass", status="succeeded"), 3_000
    )
    assert first.status is None
    last = task.on_event(
        reply(trig, Kind.FINISHED, "w2", result="warning", status="succeeded", message="slow"),
        4_000,
    )
    assert last.status == "COMPLETED"
    assert last.output["result"] == "warning" and last.output["message"] == "w2: slow"
    # decided once: later answers change nothing
    late = task.on_event(reply(trig, Kind.STARTED, "w3"), 5_000)
    assert late.ignored == "task already decided" and task.outcome is not None


@pytest.mark.parametrize(
    ("verdicts", "status"),
    [
        ([("pass", "succeeded")], "COMPLETED"),
        ([("warning", "succeeded")], "COMPLETED"),
        ([("fail", "succeeded")], "FAILED"),
        ([("pass", "errored")], "FAILED"),
        ([("pass", "aborted")], "FAILED_WITH_TERMINAL_ERROR"),
        ([("pass", "succeeded"), ("fail", "succeeded")], "FAILED"),
        ([("fail", "errored"), ("pass", "aborted")], "FAILED_WITH_TERMINAL_ERROR"),
        ([("bogus", "succeeded")], "FAILED"),  # an unknown verdict is read as the worst
        ([(None, None)], "FAILED"),
    ],
)
def test_result_mapping(verdicts: list[tuple[Any, Any]], status: str) -> None:
    task, trig = make()
    for n, _ in enumerate(verdicts):
        task.on_event(reply(trig, Kind.STARTED, f"w{n}"), 2_000)
    outcome = None
    for n, (result, state) in enumerate(verdicts):
        outcome = task.on_event(
            reply(trig, Kind.FINISHED, f"w{n}", result=result, status=state, message="m"), 3_000
        )
    assert outcome is not None and outcome.status == status
    if status != "COMPLETED":
        assert outcome.reason and "m" in outcome.reason


def test_duplicates_other_attempts_and_foreign_events_are_ignored() -> None:
    task, trig = make()
    started = reply(trig, Kind.STARTED)
    task.on_event(started, 2_000)
    assert task.on_event(started, 2_001).ignored == "duplicate event id"
    other_attempt = make(attempt=1)[1]
    assert (
        task.on_event(reply(other_attempt, Kind.FINISHED, result="pass"), 2_002).ignored
        == "answers another triggered event (attempt)"
    )
    foreign = CloudEvent(id="z", source="w1", type="sh.keptn.event.deploy.finished")
    assert task.on_event(foreign, 2_003).ignored is not None
    assert task.on_event(trig, 2_004).ignored is not None  # our own triggered, echoed
    no_data = CloudEvent(
        id="q", source="w9", type="sh.keptn.event.backup.started", extensions={"triggeredid": "x"}
    )
    assert task.on_event(no_data, 2_005).ignored is not None
    task.on_event(reply(trig, Kind.FINISHED, result="pass", status="succeeded"), 3_000)
    assert task.outcome is not None and task.outcome.status == "COMPLETED"
    assert task.ignored == 5 + 0


def test_finished_before_started_and_second_finished() -> None:
    task, trig = make()
    done = task.on_event(reply(trig, Kind.FINISHED, result="pass", status="succeeded"), 2_000)
    assert done.status == "COMPLETED"  # finished implies started
    task2, trig2 = make()
    task2.on_event(reply(trig2, Kind.STARTED, "a"), 2_000)
    task2.on_event(reply(trig2, Kind.STARTED, "b"), 2_000)
    task2.on_event(reply(trig2, Kind.FINISHED, "a", result="pass", status="succeeded"), 2_100)
    again = task2.on_event(reply(trig2, Kind.FINISHED, "a", result="fail", status="errored"), 2_200)
    assert again.ignored == "worker already finished"
    late_start = task2.on_event(reply(trig2, Kind.STARTED, "b"), 2_300)
    assert late_start.status is None  # b's second started: no change
    final = task2.on_event(
        reply(trig2, Kind.FINISHED, "b", result="pass", status="succeeded"), 2_400
    )
    assert final.status == "COMPLETED"


def test_start_timeout() -> None:
    task, _trig = make(start_timeout_s=5)
    assert task.deadline_ms == 6_000
    assert task.on_tick(5_999).status is None
    out = task.on_tick(6_000)
    assert out.status == "FAILED" and out.reason is not None and "no worker started" in out.reason
    # a started worker cancels the timeout
    task2, trig2 = make(start_timeout_s=5)
    task2.on_event(reply(trig2, Kind.STARTED), 3_000)
    assert task2.on_tick(60_000).status is None


def test_bounds() -> None:
    task, trig = make()
    for n in range(64):
        task.on_event(reply(trig, Kind.STARTED, f"w{n}"), 2_000)
    assert task.on_event(reply(trig, Kind.STARTED, "w-extra"), 2_000).ignored is not None


def test_answers_survive_the_wire() -> None:
    task, trig = make()
    wire = decode_structured(encode_structured(trig))
    ev = decode_structured(
        encode_structured(reply(wire, Kind.FINISHED, result="pass", status="succeeded"))
    )
    assert task.on_event(ev, 2_000).status == "COMPLETED"


_step = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from([Kind.STARTED, Kind.STATUS_CHANGED, Kind.FINISHED]),
    st.sampled_from(["pass", "warning", "fail"]),
    st.sampled_from(["succeeded", "errored", "aborted"]),
    st.booleans(),  # deliver twice
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_step, max_size=12))
def test_decided_at_most_once_and_only_when_every_starter_finished(steps: list[Any]) -> None:
    task, trig = make()
    decided = 0
    for worker, kind, result, status, twice in steps:
        ev = reply(trig, kind, worker, result=result, status=status)
        for _ in range(2 if twice else 1):
            out = task.on_event(ev, 2_000)
            if out.status is not None:
                decided += 1
                assert all(w.finished is not None for w in task.workers.values())
    assert decided <= 1
    assert (decided == 1) == (task.phase is Phase.DONE)
