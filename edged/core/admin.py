"""Operator requests: pause, resume, retry, restart, rerun, skip.

Each request has a `precondition` (checked by the runtime before the event
is journaled, so a refused request leaves no trace and gets a clear error)
and an apply function the decider calls.  Semantics follow Conductor's
WorkflowExecutor: retry reschedules the last failed/cancelled/timed-out
attempt of each ref and reopens cancelled JOIN/DO_WHILE tasks; restart runs
the whole execution again under the same id (optionally with the latest
definition); rerun cuts the execution back to a task and runs again from it
(with new task or workflow input); skip marks a running or future task
SKIPPED with the given output.  Task ids are never reused: new attempts take
new sequence numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from edged.core import events as ev
from edged.core.commands import CancelTask, CancelTimer, NotifyParent, RetryWorkflow, StartTimer
from edged.core.model import OPERATOR_TYPES, Task, TaskStatus, Workflow, WorkflowStatus

if TYPE_CHECKING:
    from edged.core.decider import Transition

Refusal = tuple[Literal["conflict", "bad_input", "not_found"], str]


def precondition(wf: Workflow, event: ev.Event) -> Refusal | None:
    status = wf.status
    match event:
        case ev.PauseRequested():
            if status.terminal:
                return ("conflict", f"Workflow {wf.workflow_id} is {status.value}; cannot pause")
        case ev.ResumeRequested():
            if status is not WorkflowStatus.PAUSED:
                return (
                    "conflict",
                    f"Workflow {wf.workflow_id} is {status.value}, not PAUSED; cannot resume",
                )
        case ev.TerminateRequested():
            if status.terminal:
                return ("conflict", f"Workflow {wf.workflow_id} is already {status.value}")
        case ev.RetryRequested():
            if not status.terminal:
                return (
                    "conflict",
                    f"Workflow {wf.workflow_id} is still {status.value}; cannot retry",
                )
            if not wf.tasks:
                return ("conflict", "Workflow has not started yet")
            if not _retriable(wf) and status is not WorkflowStatus.TIMED_OUT:
                return (
                    "conflict",
                    "There are no retryable tasks! Use restart if you want to attempt entire workflow execution again.",
                )
        case ev.RestartRequested():
            if not status.terminal:
                return (
                    "conflict",
                    f"Workflow {wf.workflow_id} is still {status.value}; cannot restart",
                )
            if wf.definition.get("restartable") is False:
                return ("conflict", f"Workflow {wf.name} is not restartable")
        case ev.RerunRequested():
            if not status.terminal:
                return (
                    "conflict",
                    f"Workflow {wf.workflow_id} is still {status.value}; cannot rerun",
                )
            if event.from_task_id and wf.task_by_id(event.from_task_id) is None:
                return (
                    "not_found",
                    f"Task {event.from_task_id} not found in workflow {wf.workflow_id}",
                )
        case ev.SkipTaskRequested():
            if status is not WorkflowStatus.RUNNING:
                return (
                    "conflict",
                    f"Workflow {wf.workflow_id} is {status.value}; cannot skip a task",
                )
            from edged.core.navigate import index_of

            current = wf.latest_by_ref(event.ref)
            if current is not None and current.status.terminal:
                return ("conflict", f"Task {event.ref} has already ended ({current.status.value})")
            if current is None and index_of(wf.definition).node(event.ref) is None:
                return (
                    "bad_input",
                    f"No task with reference name {event.ref} in workflow {wf.name}",
                )
        case _:
            pass
    return None


def pause(tr: Transition) -> None:
    if tr.wf.status is WorkflowStatus.RUNNING:
        tr.wf.status = WorkflowStatus.PAUSED
        tr.touch()
        tr.history("WorkflowStatusChanged", {"status": "PAUSED"})


def resume(tr: Transition) -> None:
    wf = tr.wf
    if wf.status is not WorkflowStatus.PAUSED:
        return
    wf.status = WorkflowStatus.RUNNING
    tr.queue.extend(wf.deferred)
    wf.deferred = []
    tr.touch()
    tr.history("WorkflowStatusChanged", {"status": "RUNNING"})


def _retriable(wf: Workflow) -> list[Task]:
    by_ref: dict[str, Task] = {}
    for task in wf.tasks:
        if task.status in (
            TaskStatus.FAILED,
            TaskStatus.FAILED_WITH_TERMINAL_ERROR,
            TaskStatus.TIMED_OUT,
        ) or (task.status is TaskStatus.CANCELED and task.task_type not in ("JOIN", "DO_WHILE")):
            by_ref[task.ref] = task
        elif task.status is not TaskStatus.CANCELED:
            by_ref.pop(task.ref, None)
    return sorted(by_ref.values(), key=lambda t: t.seq)


def reopen(tr: Transition, wf: Workflow) -> None:
    """The workflow runs again; a child tells its parent so the parent follows
    (Conductor's updateAndPushParents)."""
    if wf.parent_id and wf.parent_task_id and wf.status.terminal:
        tr.emit(
            NotifyParent(
                parent_id=wf.parent_id,
                parent_task_id=wf.parent_task_id,
                child_id=wf.workflow_id,
                status="RUNNING",
                output={},
                reason=None,
            )
        )
    wf.status = WorkflowStatus.RUNNING
    wf.reason = None
    wf.ended_ms = 0
    wf.failed_refs = []
    wf.root_done = False
    wf.deferred = []
    tr.touch()
    tr.history("WorkflowStatusChanged", {"status": "RUNNING"})
    timeout_s = wf.definition.get("timeoutSeconds")
    if isinstance(timeout_s, int) and not isinstance(timeout_s, bool) and timeout_s > 0:
        tr.emit(StartTimer(f"wft:{wf.workflow_id}", wf.workflow_id, tr.at_ms + timeout_s * 1000))


def retry(tr: Transition, event: ev.RetryRequested) -> None:
    from edged.core import operators

    wf = tr.wf
    if not wf.status.terminal or wf.status is WorkflowStatus.COMPLETED:
        return
    tasks = _retriable(wf)
    if not tasks and wf.status is not WorkflowStatus.TIMED_OUT:
        return  # refused by the precondition; stay a no-op if it slips through
    reopen_cancelled_operators(tr)
    reopen(tr, wf)
    for task in tasks:
        if (
            event.resume_subworkflow_tasks
            and task.task_type == "SUB_WORKFLOW"
            and task.subworkflow_id
            and task.status is not TaskStatus.CANCELED
        ):
            # resumeSubworkflowTasks: retry the child in place; this task waits for it again
            task.end_ms = 0
            task.reason = None
            tr.set_status(task, TaskStatus.IN_PROGRESS, None)
            tr.emit(RetryWorkflow(task.subworkflow_id, resume_subworkflow_tasks=True))
            continue
        operators.retry(tr, task, delay=False)
    if not tasks:
        # timed out by the workflow timeout with nothing failed: pick up where it stopped
        for task in wf.tasks:
            if not task.status.terminal and task.task_type not in OPERATOR_TYPES:
                tr.dispatch(task)
    _refresh_root_done(tr)


def reopen_cancelled_operators(tr: Transition) -> None:
    """JOIN and DO_WHILE tasks cancelled by the failure wait again."""
    for task in tr.wf.tasks:
        if task.status is TaskStatus.CANCELED and task.task_type in ("JOIN", "DO_WHILE"):
            tr.set_status(task, TaskStatus.IN_PROGRESS, None)
            task.end_ms = 0


def _refresh_root_done(tr: Transition) -> None:
    """After retry, the root walk is done if the last root task already ended well."""
    wf = tr.wf
    roots = wf.definition.get("tasks") or []
    if not roots:
        wf.root_done = True
        return
    last_ref = roots[-1].get("taskReferenceName") if isinstance(roots[-1], dict) else None
    last = wf.latest_by_ref(str(last_ref)) if last_ref else None
    if (
        last is not None
        and last.status.successful
        and last.task_type not in ("SWITCH", "DECISION", "DO_WHILE")
    ):
        wf.root_done = True


def _reset(tr: Transition, wf: Workflow) -> None:
    for task in wf.tasks:
        for key in task.timers:
            tr.emit(CancelTimer(key))
        if not task.status.terminal and task.task_type not in OPERATOR_TYPES:
            tr.emit(CancelTask(wf.workflow_id, task.task_id))
    tr.decision.removed.extend(t.task_id for t in wf.tasks)
    for task in wf.tasks:
        tr.decision.changed.pop(task.task_id, None)
    wf.tasks = []
    wf.output = {}
    variables = wf.definition.get("variables")
    wf.variables = dict(variables) if isinstance(variables, dict) else {}


def restart(tr: Transition, event: ev.RestartRequested) -> None:
    wf = tr.wf
    if not wf.status.terminal:
        return
    if event.definition is not None:
        wf.definition = event.definition
        from edged.core.navigate import index_of

        tr.index = index_of(wf.definition)
    _reset(tr, wf)
    reopen(tr, wf)
    wf.created_ms = tr.at_ms
    tr.start()


def rerun(tr: Transition, event: ev.RerunRequested) -> None:
    from edged.core import operators
    from edged.core.decider import Scope

    wf = tr.wf
    if not wf.status.terminal:
        return
    if event.workflow_input is not None:
        wf.input = event.workflow_input
    if event.correlation_id is not None:
        wf.correlation_id = event.correlation_id
    target = wf.task_by_id(event.from_task_id) if event.from_task_id else None
    if target is None:
        _reset(tr, wf)
        reopen(tr, wf)
        tr.start()
        return
    kept_joins = _joins_of_kept_forks(wf, target)
    cut = [t for t in wf.tasks if t.seq > target.seq and t.task_id not in kept_joins]
    for task in cut:
        for key in task.timers:
            tr.emit(CancelTimer(key))
        tr.decision.changed.pop(task.task_id, None)
    tr.decision.removed.extend(t.task_id for t in cut)
    cut_refs = {t.base_ref for t in cut} | {target.base_ref}
    wf.tasks = [t for t in wf.tasks if t.seq <= target.seq or t.task_id in kept_joins]
    reopen(tr, wf)
    for task in wf.tasks:  # reopen the JOIN / DO_WHILE the rerun task belongs to
        if task is target:
            continue
        if task.task_type == "JOIN" and (
            task.task_id in kept_joins
            or cut_refs & {str(r) for r in task.input.get("joinOn") or []}
        ):
            _reopen_task(tr, task)
        elif task.task_type == "DO_WHILE" and target.loop_id == task.task_id:
            task.marker = 0
            _reopen_task(tr, task)
    task_input: Any = event.task_input
    # A DO_WHILE is scheduled afresh too: its body tasks came after it and were
    # cut, so reopening it in place would leave a loop with nothing to run.
    if target.task_type in OPERATOR_TYPES and target.task_type != "JOIN":
        wf.tasks.remove(target)
        tr.decision.changed.pop(target.task_id, None)
        tr.decision.removed.append(target.task_id)
        wt = target.wt if task_input is None else {**target.wt, "inputParameters": task_input}
        operators.schedule(tr, wt, Scope(target.loop_id, target.iteration, target.fork_id))
        return
    target.generation += 1
    target.output = {}
    target.reason = None
    target.start_ms = target.end_ms = 0
    target.scheduled_ms = tr.at_ms
    target.retried = False
    target.timers = []
    if isinstance(task_input, dict):
        target.input = task_input
    if target.task_type == "JOIN":
        _reopen_task(tr, target)
        operators.check_join(tr, target)
        return
    tr.set_status(target, TaskStatus.SCHEDULED, None)
    tr.dispatch(target)


def _joins_of_kept_forks(wf: Workflow, target: Task) -> set[str]:
    """JOINs scheduled after `target` whose FORK_JOIN is kept by the rerun.

    A fork schedules its JOIN after the first task of every branch, and a
    branch's synchronous tasks run at once, so the JOIN can come after a task
    of its own branches: cutting it would leave the branches nothing to join.
    """
    from edged.core.navigate import index_of

    index = index_of(wf.definition)
    kept: set[str] = set()
    for join in wf.tasks:
        if join.task_type != "JOIN" or join.seq <= target.seq:
            continue
        slot = index.slot(join.base_ref)
        fork = slot.items[slot.index - 1] if slot is not None and slot.index > 0 else None
        fork_ref = fork.get("taskReferenceName") if isinstance(fork, dict) else None
        if any(
            t.base_ref == fork_ref
            and t.seq <= target.seq
            and t.loop_id == join.loop_id
            and t.iteration == join.iteration
            for t in wf.tasks
        ):
            kept.add(join.task_id)
    return kept


def _reopen_task(tr: Transition, task: Task) -> None:
    task.end_ms = 0
    task.reason = None
    tr.set_status(task, TaskStatus.IN_PROGRESS, None)


def skip(tr: Transition, event: ev.SkipTaskRequested) -> None:
    from edged.core.decider import Scope
    from edged.core.navigate import index_of

    wf = tr.wf
    if wf.status is not WorkflowStatus.RUNNING:
        return
    current = wf.latest_by_ref(event.ref)
    if current is not None and not current.status.terminal:
        if current.task_type not in OPERATOR_TYPES:
            tr.emit(CancelTask(wf.workflow_id, current.task_id))
        current.input = {**current.input, **event.task_input}
        current.output = dict(event.task_output)
        tr.finish(current, TaskStatus.SKIPPED, "skipped by request")
        return
    wt = index_of(wf.definition).node(event.ref)
    if wt is None or current is not None:
        return
    ahead = tr.new_task(wt, Scope(), resolve_input=False)
    ahead.input = dict(event.task_input)
    ahead.output = dict(event.task_output)
    ahead.status = TaskStatus.SKIPPED
    ahead.reason = "skipped by request"
    tr.changed(ahead)
