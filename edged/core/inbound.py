"""Inbound news for an execution: task results, starts, timers, children, signals.

Each function applies one kind of event to the transition in progress and is
idempotent against duplicates and stale deliveries: a result for a task that
already ended, for an older run of it (generation) or a timer that is no
longer armed changes nothing and emits nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edged.core import events as ev
from edged.core.commands import CancelTask
from edged.core.model import OPERATOR_TYPES, Task, TaskStatus, WorkflowStatus
from edged.core.policies import seconds

if TYPE_CHECKING:
    from edged.core.decider import Transition


# TaskStatus(text) without the enum machinery: one dict lookup per result.
_STATUS_OF: dict[str, TaskStatus] = {status.value: status for status in TaskStatus}


def on_result(tr: Transition, event: ev.TaskResultReceived) -> None:
    task = tr.wf.task_by_id(event.task_id)
    if task is None or task.status.terminal or tr.wf.status.terminal:
        return
    if event.generation is not None and event.generation != task.generation:
        return
    if event.logs:
        tr._append_logs(task, event.logs)
    if event.worker_id:
        task.worker_id = event.worker_id
    if event.started_ms and not task.start_ms:
        task.start_ms = event.started_ms
    try:
        status = _STATUS_OF.get(event.status)
    except TypeError:  # unhashable: not a status either
        return
    if status is None:
        return  # not a task status
    if status is TaskStatus.IN_PROGRESS:
        task.output.update(event.output)
        if not task.start_ms:
            task.start_ms = tr.at_ms
        task.update_ms = tr.at_ms
        task.callback_after_s = max(0, event.callback_after_s)
        tr.changed(task)
        if task.task_type in OPERATOR_TYPES:
            task.status = TaskStatus.IN_PROGRESS
            tr.arm_response_timer(task)
            return
        # Conductor's WorkflowExecutor.updateTask: a worker's IN_PROGRESS puts the
        # task back in its queue as SCHEDULED, pollable again after
        # callbackAfterSeconds (at once for 0); no response timeout while queued.
        task.status = TaskStatus.SCHEDULED
        tr.cancel_timers(task, "rt")
        if task.callback_after_s:
            tr.arm_timer(task, "delay", tr.at_ms + task.callback_after_s * 1000)
        else:
            tr.dispatch(task)
        return
    if status is TaskStatus.SCHEDULED:
        return
    task.output.update(event.output)
    tr.finish(task, status, event.reason)


def on_started(tr: Transition, event: ev.TaskStarted) -> None:
    task = tr.wf.task_by_id(event.task_id)
    if task is None or task.status.terminal or tr.wf.status.terminal:
        return
    if event.generation != task.generation:
        return
    # Conductor's ExecutionService.poll: IN_PROGRESS, startTime once, workerId,
    # pollCount + 1, callbackAfterSeconds back to 0; the poll timeout is over.
    if task.status is not TaskStatus.IN_PROGRESS:
        tr.history("TaskStatusChanged", _started_body(task, event.worker_id))
    task.status = TaskStatus.IN_PROGRESS
    task.start_ms = task.start_ms or tr.at_ms
    task.update_ms = tr.at_ms
    task.poll_count += 1
    task.worker_id = event.worker_id or task.worker_id
    task.callback_after_s = 0
    tr.cancel_timers(task, "pt")
    tr.arm_timeouts(task)
    tr.changed(task)


def _started_body(task: Task, worker_id: str | None) -> dict[str, str]:
    # in the history so that live streams show when a worker picked the task up
    body = {"taskId": task.task_id, "ref": task.ref, "status": "IN_PROGRESS"}
    if worker_id:
        body["workerId"] = worker_id
    return body


def on_lease_extended(tr: Transition, event: ev.TaskLeaseExtended) -> None:
    task = tr.wf.task_by_id(event.task_id)
    if task is None or task.status is not TaskStatus.IN_PROGRESS or tr.wf.status.terminal:
        return
    task.update_ms = tr.at_ms
    tr.arm_response_timer(task)
    tr.changed(task)


def on_logged(tr: Transition, event: ev.TaskLogged) -> None:
    task = tr.wf.task_by_id(event.task_id)
    if task is None or tr.wf.status.terminal or not event.logs:
        return
    tr._append_logs(task, event.logs)


def on_timer(tr: Transition, event: ev.TimerFired) -> None:
    kind, _, rest = event.key.partition(":")
    wf = tr.wf
    if kind == "wft":
        if wf.status.terminal or rest != wf.workflow_id:
            return
        policy = wf.definition.get("timeoutPolicy", "ALERT_ONLY")
        if policy == "TIME_OUT_WF":
            tr.end_workflow(WorkflowStatus.TIMED_OUT, "Workflow timed out")
        else:
            tr.history("WorkflowTimeoutAlert", {})
        return
    task_id, _, gen_text = rest.partition(":")
    task = wf.task_by_id(task_id)
    if task is None or task.status.terminal or wf.status.terminal:
        return
    if event.key not in task.timers:
        return  # cancelled, replaced by a newer one, or delivered twice
    task.timers.remove(event.key)
    tr.changed(task)
    if gen_text.split(":")[0] != str(task.generation):
        return
    if kind == "delay":
        tr.dispatch(task)
    elif kind == "wait":
        tr.finish(task, TaskStatus.COMPLETED, None)
    elif kind == "pt":
        if task.status is not TaskStatus.SCHEDULED:
            return
        s = seconds(task.taskdef, "pollTimeoutSeconds")
        _time_out(tr, task, f"Task poll timed out after {s} seconds")
    elif kind == "tt":
        reason = f"Task timed out after {seconds(task.taskdef, 'timeoutSeconds')} seconds"
        _time_out(tr, task, reason)
    elif kind == "rt":
        stamp = gen_text.split(":")[1] if gen_text.count(":") else ""
        if stamp != str(task.update_ms):
            return
        reason = f"responseTimeout: {seconds(task.taskdef, 'responseTimeoutSeconds')} seconds"
        tr.emit(CancelTask(wf.workflow_id, task.task_id))
        tr.finish(task, TaskStatus.TIMED_OUT, reason)


def _time_out(tr: Transition, task: Task, reason: str) -> None:
    """Conductor's timeoutTaskWithTimeoutPolicy (task and poll timeouts)."""
    wf = tr.wf
    policy = (task.taskdef or {}).get("timeoutPolicy", "TIME_OUT_WF")
    if policy == "ALERT_ONLY":
        tr.history("TaskTimeoutAlert", {"taskId": task.task_id, "ref": task.ref})
        return
    if policy == "TIME_OUT_WF":
        tr.set_status(task, TaskStatus.TIMED_OUT, reason)
        tr.emit(CancelTask(wf.workflow_id, task.task_id))
        tr.end_workflow(WorkflowStatus.TIMED_OUT, reason, failed=task)
        return
    tr.emit(CancelTask(wf.workflow_id, task.task_id))
    tr.finish(task, TaskStatus.TIMED_OUT, reason)


def on_child_ended(tr: Transition, event: ev.ChildWorkflowEnded) -> None:
    task = tr.wf.task_by_id(event.task_id)
    if event.status == "RUNNING":
        on_child_reopened(tr, task, event.child_id)
        return
    if task is None or task.status.terminal or task.subworkflow_id != event.child_id:
        return
    if tr.wf.status.terminal:
        return
    mapping = {
        "COMPLETED": TaskStatus.COMPLETED,
        "FAILED": TaskStatus.FAILED,
        "TIMED_OUT": TaskStatus.TIMED_OUT,
        "TERMINATED": TaskStatus.CANCELED,
    }
    status = mapping.get(event.status)
    if status is None:
        return
    if status is TaskStatus.COMPLETED:
        task.output.update(event.output)
    tr.finish(task, status, event.reason)


def on_child_reopened(tr: Transition, task: Task | None, child_id: str) -> None:
    """The child was retried/restarted/rerun: Conductor's updateAndPushParents puts the
    SUB_WORKFLOW task back IN_PROGRESS and the parent (and its parents) back RUNNING,
    unless the task is optional (its failure was already absorbed)."""
    from edged.core import admin

    wf = tr.wf
    if task is None or task.subworkflow_id != child_id or task.retried:
        return
    if task.wt.get("optional") or not task.status.terminal:
        return
    task.end_ms = 0
    task.reason = None
    tr.set_status(task, TaskStatus.IN_PROGRESS, None)
    if wf.status.terminal:
        admin.reopen_cancelled_operators(tr)
        admin.reopen(tr, wf)


def on_signal(tr: Transition, event: ev.TaskSignaled) -> None:
    wf = tr.wf
    if wf.status.terminal:
        return
    target: Task | None = None
    for task in reversed(wf.tasks):
        if task.status.terminal:
            continue
        if event.ref is not None:
            if task.ref == event.ref:
                target = task
                break
        elif task.task_type in (event.task_types or ("WAIT", "HUMAN")):
            target = task
            break
    if target is None:
        return
    on_result(
        tr,
        ev.TaskResultReceived(
            at_ms=event.at_ms,
            task_id=target.task_id,
            status=event.status,
            output=event.output,
            worker_id=event.worker_id,
        ),
    )
