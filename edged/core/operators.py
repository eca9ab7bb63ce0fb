"""Scheduling each kind of WorkflowTask, and what happens after a task ends.

`schedule(tr, wt, scope)` turns a definition node into tasks:

- synchronous operators (SWITCH/DECISION, FORK_JOIN(_DYNAMIC), SET_VARIABLE,
  INLINE, LAMBDA, JSON_JQ_TRANSFORM, NOOP, TERMINATE, EXCLUSIVE_JOIN, EVENT)
  are carried out on the spot and queued as finished;
- waiting operators (JOIN, DO_WHILE, SUB_WORKFLOW, START_WORKFLOW, WAIT,
  HUMAN) stay IN_PROGRESS until a result, a child, a signal or a timer;
- everything else is work: SCHEDULED and handed to the runtime.

`after_terminal(tr, task)` is Conductor's decide step for one finished task:
retry it (per TaskDef/WorkflowTask retryCount and retry logic), turn an
exhausted optional task into COMPLETED_WITH_ERRORS, let a permissive one pass
(the workflow fails at its end), fail the workflow, or advance along the
definition: next node in the list, else up to the owner (after a SWITCH, the
fork's JOIN, the DO_WHILE's next iteration, the end of the workflow).

The schedulers themselves live in `forks` (forks and joins) and
`schedule_basic` (work and every other operator); this module dispatches.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from edged.core import forks, loops
from edged.core import schedule_basic as basic
from edged.core.model import (
    OPERATOR_TYPES,
    ROOT_SCOPE,
    Task,
    TaskStatus,
    WorkflowStatus,
    strip_iteration,
    with_iteration,
)
from edged.core.navigate import node_facts
from edged.core.policies import max_retries, retry_delay_s

if TYPE_CHECKING:
    from edged.core.decider import Scope, Transition

NOT_RETRIED = OPERATOR_TYPES - {"SUB_WORKFLOW"}

# admin re-checks a reopened JOIN through operators.check_join
check_join = forks.check_join


def schedule(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    wf = tr.wf
    if wf.status.terminal:
        # a TERMINATE in an earlier fork branch (or loop body) ended the
        # execution while this walk was under way: nothing more may start
        return
    # a node of the pinned definition is read once, others here
    facts = tr.index.facts.get(id(wt)) or node_facts(wt)
    base_ref, kind = facts.base_ref, facts.kind
    ref = with_iteration(base_ref, scope.iteration) if scope.iteration else base_ref
    existing = wf.latest_by_ref(ref)
    if existing is not None and existing.status is TaskStatus.SKIPPED and not existing.end_ms:
        # skipped ahead of time through the API: count it as done and move on
        tr.set_status(existing, TaskStatus.SKIPPED, existing.reason)
        tr.queue.append(existing.task_id)
        return
    _SCHEDULERS.get(kind, basic.schedule_work)(tr, wt, scope)


# ----------------------------------------------------------------- operators


_SCHEDULERS = {
    "SWITCH": basic.schedule_switch,
    "DECISION": basic.schedule_switch,
    "FORK_JOIN": forks.schedule_fork,
    "FORK_JOIN_DYNAMIC": forks.schedule_dynamic_fork,
    "JOIN": forks.schedule_join,
    "EXCLUSIVE_JOIN": forks.schedule_exclusive_join,
    "DO_WHILE": basic.schedule_do_while,
    "SUB_WORKFLOW": basic.schedule_sub_workflow,
    "START_WORKFLOW": basic.schedule_start_workflow,
    "WAIT": basic.schedule_wait,
    "HUMAN": basic.schedule_human,
    "SET_VARIABLE": basic.schedule_set_variable,
    "INLINE": basic.schedule_script,
    "LAMBDA": basic.schedule_script,
    "JSON_JQ_TRANSFORM": basic.schedule_script,
    "NOOP": basic.schedule_noop,
    "TERMINATE": basic.schedule_terminate,
    "EVENT": basic.schedule_event,
    "DYNAMIC": basic.schedule_dynamic,
}


def register_publish_type(kind: str, sink: str) -> None:
    """Tasks of type `kind` publish their input through the outbox to `sink`.

    For adapters (the MQTT adapter registers MQTT_PUBLISH -> "mqtt_publish"):
    the task emits a `PublishEvent` in the transition that schedules it, so
    the message is journaled with its cause, and stays IN_PROGRESS until the
    sink reports the delivery as the task's result.
    """
    OPERATOR_TYPES.add(kind)
    _SCHEDULERS[kind] = functools.partial(basic.schedule_publish, sink=sink)


# ------------------------------------------------------------ after the end


def after_terminal(tr: Transition, task: Task) -> None:
    wf = tr.wf
    if task.retried or not task.status.terminal:
        return
    if not task.status.successful:
        if _can_retry(task):
            retry(tr, task)
            return
        if task.wt.get("optional"):
            tr.set_status(task, TaskStatus.COMPLETED_WITH_ERRORS, task.reason)
        elif not task.wt.get("permissive"):
            fail_workflow_for(tr, task)
            return
    if wf.status.terminal:
        return
    advance(tr, task)


def fail_workflow_for(tr: Transition, task: Task) -> None:
    """DeciderService.retry's TerminateWorkflowException: the status follows the task's,
    the reason names the task, and the workflow output is evaluated as it stands."""
    if task.status is TaskStatus.TIMED_OUT:
        status = WorkflowStatus.TIMED_OUT
    elif task.status is TaskStatus.CANCELED:
        status = WorkflowStatus.TERMINATED
    else:
        status = WorkflowStatus.FAILED
    reason = f"Task {task.task_id} failed with status: {status.value} and reason: '{task.reason}'"
    tr.end_workflow(status, reason, failed=task, output=tr.workflow_output())


def _can_retry(task: Task) -> bool:
    if not task.status.retriable or task.task_type in NOT_RETRIED:
        return False
    if task.status is TaskStatus.CANCELED and task.task_type != "SUB_WORKFLOW":
        return False
    return task.retry_count < max_retries(task.wt, task.taskdef)


def retry(tr: Transition, task: Task, *, delay: bool = True) -> Task:
    """A new attempt of `task`: new id, retryCount + 1, same input (DeciderService.retry)."""
    wf = tr.wf
    task.retried = True
    tr.changed(task)
    if task.task_type in OPERATOR_TYPES:
        return _retry_operator(tr, task)
    seq = wf.next_seq
    wf.next_seq += 1
    again = Task(
        task_id=tr.task_id(seq),
        seq=seq,
        ref=task.ref,
        task_type=task.task_type,
        def_name=task.def_name,
        wt=task.wt,
        status=TaskStatus.SCHEDULED,
        input=dict(task.input),
        scheduled_ms=tr.at_ms,
        update_ms=tr.at_ms,
        retry_count=task.retry_count + 1,
        iteration=task.iteration,
        retried_task_id=task.task_id,
        taskdef=task.taskdef,
        loop_id=task.loop_id,
        fork_id=task.fork_id,
    )
    again.start_delay_s = retry_delay_s(task.taskdef, task.retry_count) if delay else 0
    _own_task_id_inputs(tr, again)
    wf.tasks.append(again)
    tr.changed(again)
    tr.history(
        "TaskScheduled",
        {
            "taskId": again.task_id,
            "ref": again.ref,
            "type": again.task_type,
            "retryOf": task.task_id,
            "seq": seq,
        },
    )
    tr.dispatch(again)
    return again


def _own_task_id_inputs(tr: Transition, again: Task) -> None:
    """Inputs wired to `${CPEWF_TASK_ID}` name the new attempt, not the failed one.

    DeciderService.retry re-resolves the input with the new task id; only the
    parameters that mention CPEWF_TASK_ID can differ from the copied input.
    """
    params = again.wt.get("inputParameters")
    if not isinstance(params, dict):
        return
    own = {k: v for k, v in params.items() if "CPEWF_TASK_ID" in repr(v)}
    if own:
        from edged.core.views import ExpressionContext
        from edged.expr import resolve

        ctx = ExpressionContext(tr.wf)
        resolved = resolve(own, ctx, task_id=again.task_id, env=tr.decider.env)
        if isinstance(resolved, dict):
            again.input = {**again.input, **resolved}


def _retry_operator(tr: Transition, task: Task) -> Task:
    """An operator runs again by being scheduled again, never dispatched as work.

    A SUB_WORKFLOW starts a new child, a JOIN re-checks its members, an INLINE
    or a DO_WHILE is evaluated afresh (an executor has no binding for them).
    """
    from edged.core.decider import Scope

    wf = tr.wf
    before = len(wf.tasks)
    schedule(tr, task.wt, Scope(task.loop_id, task.iteration, task.fork_id))
    again = next((t for t in wf.tasks[before:] if t.ref == task.ref), None)
    if again is None:
        return task
    again.retry_count = task.retry_count + 1
    again.retried_task_id = task.task_id
    tr.changed(again)
    return again


def advance(tr: Transition, task: Task) -> None:
    wf = tr.wf
    ref = task.ref
    base_ref = strip_iteration(ref) if "__" in ref else ref  # task.base_ref, without a call
    slot = tr.index.slots.get(base_ref)
    if task.fork_id is not None and slot is None:
        _check_open_joins(tr)
        return
    nxt = None if slot is None else slot.next
    if task.loop_id is None and task.fork_id is None and not task.iteration:
        scope = ROOT_SCOPE  # tr.scope_of(task), without the call
    else:
        scope = tr.scope_of(task)
    if nxt is not None:
        schedule(tr, nxt, scope)
    elif slot is None or slot.kind == "root":
        wf.root_done = True
        tr.touch()
    elif slot.kind == "case":
        owner = _owner(tr, slot.owner, task)
        if owner is not None:
            advance(tr, owner)
    elif slot.kind == "branch":
        _check_open_joins(tr)
    elif slot.kind == "loop":
        loop = wf.task_by_id(task.loop_id) if task.loop_id else None
        if loop is not None:
            current = int(loop.output.get("iteration", 1))
            if loop.marker != current:
                loop.marker = current
                tr.changed(loop)
            loops.check_loop(tr, loop)
    if task.loop_id:
        # a straggler of an iteration whose body already ended may be the last
        loop = wf.task_by_id(task.loop_id)
        if loop is not None:
            loops.check_loop(tr, loop)


def _owner(tr: Transition, owner_ref: str | None, child: Task) -> Task | None:
    if owner_ref is None:
        return None
    for task in reversed(tr.wf.tasks):
        if (
            task.base_ref == owner_ref
            and task.loop_id == child.loop_id
            and task.iteration == child.iteration
        ):
            return task
    return None


def _check_open_joins(tr: Transition) -> None:
    for task in list(tr.wf.tasks):
        if task.task_type == "JOIN" and not task.status.terminal:
            check_join(tr, task)
