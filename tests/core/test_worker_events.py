"""The decider's side of the Conductor worker protocol.

A poll (`TaskStarted`), a worker's IN_PROGRESS result, a lease extension
(`TaskLeaseExtended`), task logs (`TaskLogged`) and the poll timeout, each as
conductor-oss's ExecutionService.poll / WorkflowExecutor.updateTask /
DeciderService.checkTaskPollTimeout do them.
"""

from __future__ import annotations

from typing import Any

from core_driver import START_MS, fresh_workflow

from edged.core import events as ev
from edged.core.commands import CancelTask, CancelTimer, DispatchTask, StartTimer
from edged.core.decider import Decider
from edged.core.model import TaskStatus, Workflow, WorkflowStatus

ONE_TASK = {
    "name": "one",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [{"name": "work", "taskReferenceName": "w", "type": "SIMPLE"}],
}


def started(taskdef: dict[str, Any]) -> tuple[Decider, Workflow]:
    decider = Decider(lambda name: {"name": name, **taskdef} if name == "work" else None)
    wf = fresh_workflow(ONE_TASK, {})
    decision = decider.decide(wf, ev.WorkflowStarted(at_ms=START_MS))
    assert any(isinstance(c, DispatchTask) for c in decision.commands)
    return decider, wf


def timers_armed(commands: list[Any]) -> dict[str, int]:
    return {c.key.split(":")[0]: c.fire_at_ms for c in commands if isinstance(c, StartTimer)}


def test_poll_marks_the_task_in_progress_and_starts_the_response_timeout() -> None:
    decider, wf = started({"responseTimeoutSeconds": 30, "retryCount": 0})
    task = wf.tasks[0]
    task.callback_after_s = 7
    at = START_MS + 500
    decision = decider.decide(wf, ev.TaskStarted(at_ms=at, task_id=task.task_id, worker_id="w1"))
    assert task.status is TaskStatus.IN_PROGRESS
    assert (task.start_ms, task.update_ms, task.poll_count) == (at, at, 1)
    assert task.worker_id == "w1"
    assert task.callback_after_s == 0  # reset when handed to a worker
    assert timers_armed(decision.commands)["rt"] == at + 30_000
    # a second poll of the same task (after a restart) counts again
    decider.decide(wf, ev.TaskStarted(at_ms=at + 10, task_id=task.task_id, worker_id="w2"))
    assert (task.poll_count, task.worker_id, task.start_ms) == (2, "w2", at)


def test_in_progress_from_a_worker_requeues_after_the_callback() -> None:
    decider, wf = started({"responseTimeoutSeconds": 30})
    task = wf.tasks[0]
    decider.decide(wf, ev.TaskStarted(at_ms=START_MS + 1, task_id=task.task_id))
    at = START_MS + 1000
    decision = decider.decide(
        wf,
        ev.TaskResultReceived(
            at_ms=at,
            task_id=task.task_id,
            status="IN_PROGRESS",
            output={"progress": 1},
            callback_after_s=5,
        ),
    )
    assert task.status is TaskStatus.SCHEDULED
    assert task.output == {"progress": 1}
    assert any(isinstance(c, CancelTimer) and c.key.startswith("rt:") for c in decision.commands)
    assert timers_armed(decision.commands) == {"delay": at + 5000}
    assert not any(isinstance(c, DispatchTask) for c in decision.commands)
    # the delay fires: back in the queue, still SCHEDULED until polled again
    delay_key = next(k for k in task.timers if k.startswith("delay:"))
    decision = decider.decide(wf, ev.TimerFired(at_ms=at + 5000, key=delay_key))
    assert [type(c) for c in decision.commands if isinstance(c, DispatchTask)] == [DispatchTask]
    assert task.status is TaskStatus.SCHEDULED


def test_in_progress_without_callback_requeues_at_once() -> None:
    decider, wf = started({})
    task = wf.tasks[0]
    decider.decide(wf, ev.TaskStarted(at_ms=START_MS + 1, task_id=task.task_id))
    decision = decider.decide(
        wf, ev.TaskResultReceived(at_ms=START_MS + 2, task_id=task.task_id, status="IN_PROGRESS")
    )
    assert task.status is TaskStatus.SCHEDULED
    assert any(isinstance(c, DispatchTask) for c in decision.commands)


def test_lease_extension_restarts_the_response_timeout() -> None:
    decider, wf = started({"responseTimeoutSeconds": 10, "retryCount": 0})
    task = wf.tasks[0]
    decider.decide(wf, ev.TaskStarted(at_ms=START_MS + 1, task_id=task.task_id))
    first_rt = next(k for k in task.timers if k.startswith("rt:"))
    decision = decider.decide(wf, ev.TaskLeaseExtended(at_ms=START_MS + 8000, task_id=task.task_id))
    assert task.status is TaskStatus.IN_PROGRESS
    assert timers_armed(decision.commands)["rt"] == START_MS + 18_000
    # the old response timer is stale now: its fire changes nothing
    stale = decider.decide(wf, ev.TimerFired(at_ms=START_MS + 10_001, key=first_rt))
    assert stale.empty and task.status is TaskStatus.IN_PROGRESS
    # without further news the new one times the task out
    new_rt = next(k for k in task.timers if k.startswith("rt:"))
    decision = decider.decide(wf, ev.TimerFired(at_ms=START_MS + 18_000, key=new_rt))
    assert task.status is TaskStatus.TIMED_OUT
    assert any(isinstance(c, CancelTask) for c in decision.commands)


def test_lease_extension_of_a_queued_or_ended_task_is_ignored() -> None:
    decider, wf = started({})
    task = wf.tasks[0]
    assert decider.decide(wf, ev.TaskLeaseExtended(START_MS + 5, task.task_id)).empty
    assert decider.decide(wf, ev.TaskLeaseExtended(START_MS + 5, "no-such-task")).empty


def test_poll_timeout_times_out_an_unpolled_task_by_its_policy() -> None:
    decider, wf = started({"pollTimeoutSeconds": 5, "timeoutPolicy": "RETRY", "retryCount": 1})
    task = wf.tasks[0]
    pt = next(k for k in task.timers if k.startswith("pt:"))
    decider.decide(wf, ev.TimerFired(at_ms=START_MS + 5000, key=pt))
    assert task.status is TaskStatus.TIMED_OUT
    assert task.reason == "Task poll timed out after 5 seconds"
    assert [t.status for t in wf.tasks] == [TaskStatus.TIMED_OUT, TaskStatus.SCHEDULED]
    assert wf.status is WorkflowStatus.RUNNING


def test_poll_timeout_with_time_out_wf_ends_the_workflow() -> None:
    decider, wf = started({"pollTimeoutSeconds": 5})  # timeoutPolicy defaults to TIME_OUT_WF
    pt = next(k for k in wf.tasks[0].timers if k.startswith("pt:"))
    decider.decide(wf, ev.TimerFired(at_ms=START_MS + 5000, key=pt))
    assert wf.status is WorkflowStatus.TIMED_OUT


def test_a_poll_disarms_the_poll_timeout() -> None:
    decider, wf = started({"pollTimeoutSeconds": 5})
    task = wf.tasks[0]
    pt = next(k for k in task.timers if k.startswith("pt:"))
    decision = decider.decide(wf, ev.TaskStarted(at_ms=START_MS + 100, task_id=task.task_id))
    assert CancelTimer(pt) in decision.commands
    assert decider.decide(wf, ev.TimerFired(at_ms=START_MS + 5000, key=pt)).empty
    assert task.status is TaskStatus.IN_PROGRESS


def test_no_poll_timeout_without_poll_timeout_seconds() -> None:
    _, wf = started({})
    assert not [k for k in wf.tasks[0].timers if k.startswith("pt:")]


def test_logs_are_appended_and_nothing_else_changes() -> None:
    decider, wf = started({})
    task = wf.tasks[0]
    decision = decider.decide(wf, ev.TaskLogged(START_MS + 3, task.task_id, ("one", "two")))
    assert [entry["log"] for entry in task.logs] == ["one", "two"]
    assert task.status is TaskStatus.SCHEDULED
    assert task.task_id in decision.changed
    assert not decision.commands
    assert decider.decide(wf, ev.TaskLogged(START_MS + 4, "no-such-task", ("x",))).empty
