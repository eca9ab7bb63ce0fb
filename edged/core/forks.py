"""FORK_JOIN, FORK_JOIN_DYNAMIC, JOIN and EXCLUSIVE_JOIN.

Theory of operation
-------------------
A fork finishes on the spot: it schedules the first node of every branch (a
dynamic fork builds its branches from the input: task list + per-task input,
or `forkTaskName`/`forkTaskWorkflow` with an input list) and then its JOIN,
so a task list reads fork, branch tasks, JOIN as in Conductor.  The JOIN
stays IN_PROGRESS; `check_join` runs whenever a member may have ended: it
completes when every joined ref (in the JOIN's own loop iteration) is
terminal, fails when a non-optional member failed, and gathers the members'
outputs.  An EXCLUSIVE_JOIN takes the output of whichever of its refs ran.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edged.core.model import OPERATOR_TYPES, Task, TaskStatus
from edged.core.navigate import first_task

if TYPE_CHECKING:
    from edged.core.decider import Scope, Transition


def schedule_fork(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    from edged.core.operators import schedule

    fork = tr.new_task(wt, scope)
    join_wt = tr.index.next_in_list(str(wt.get("taskReferenceName", "")))
    branches = [b for b in (wt.get("forkTasks") or []) if isinstance(b, list) and b]
    tr.set_status(fork, TaskStatus.COMPLETED, None)
    # Conductor's order: the fork, every branch's first task, then the JOIN.
    # A fork nested in a branch owes its JOIN until the outermost fork has
    # scheduled all its branches (Conductor's decider schedules every JOIN as
    # the "next task" of its completed fork, after the fork mapper's output).
    tr.fork_depth += 1
    try:
        for branch in branches:
            first = first_task(branch)
            if first is not None:
                schedule(tr, first, scope)
    finally:
        tr.fork_depth -= 1
    tr.owed_joins.append((join_wt, scope))
    if tr.fork_depth:
        return
    owed, tr.owed_joins = tr.owed_joins, []
    joins = [_make_join(tr, owed_wt, owed_scope, None) for owed_wt, owed_scope in owed]
    for join in joins:
        if join is not None:
            check_join(tr, join)


def schedule_dynamic_fork(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    from edged.core.decider import Scope as ScopeType
    from edged.core.operators import schedule

    fork = tr.new_task(wt, scope)
    try:
        forked = _dynamic_branches(wt, fork.input)
    except ValueError as exc:
        tr.finish(fork, TaskStatus.FAILED, str(exc))
        return
    fork.input = {
        **fork.input,
        "forkedTasks": [str(t["taskReferenceName"]) for t, _ in forked],
        "forkedTaskInputs": {str(t["taskReferenceName"]): i for t, i in forked},
    }
    tr.set_status(fork, TaskStatus.COMPLETED, None)
    join_wt = tr.index.next_in_list(str(wt.get("taskReferenceName", "")))
    branch_scope = ScopeType(scope.loop_id, scope.iteration, fork.task_id)
    for node, node_input in forked:
        kind = str(node.get("type") or "SIMPLE")
        if kind in ("SIMPLE", "HTTP") or kind not in OPERATOR_TYPES:
            # Conductor resolves the node's own inputParameters (${CPEWF_TASK_ID}
            # is the new task's id) and then adds the dynamicTasksInput entry.
            task = tr.new_task(node, branch_scope, resolve_input=True)
            if node_input is not node.get("inputParameters"):
                task.input = {**task.input, **node_input}
            tr.dispatch(task)
        else:
            before = len(tr.wf.tasks)
            schedule(tr, {**node, "inputParameters": node_input}, branch_scope)
            for created in tr.wf.tasks[before:]:
                created.fork_id = fork.task_id
    join = _make_join(tr, join_wt, scope, [str(t["taskReferenceName"]) for t, _ in forked])
    if join is not None:
        check_join(tr, join)


def _dynamic_branches(
    wt: dict[str, Any], task_input: dict[str, Any]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Both of Conductor's forms: a list of WorkflowTasks, or a task name with a list of inputs."""
    fork_name = task_input.get("forkTaskName") or wt.get("forkTaskName")
    if fork_name or "forkTaskInputs" in task_input:
        inputs = task_input.get("forkTaskInputs")
        if not isinstance(fork_name, str) or not isinstance(inputs, list):
            raise ValueError(
                "FORK_JOIN_DYNAMIC needs forkTaskName (a string) and forkTaskInputs (a list)"
            )
        fork_type = task_input.get("forkTaskType") or "SIMPLE"
        out = []
        for i, item in enumerate(inputs):
            node = {"name": fork_name, "taskReferenceName": f"_{fork_name}_{i}", "type": fork_type}
            out.append((node, item if isinstance(item, dict) else {"input": item}))
        return out
    tasks_param = wt.get("dynamicForkTasksParam")
    inputs_param = wt.get("dynamicForkTasksInputParamName")
    tasks = task_input.get(tasks_param) if isinstance(tasks_param, str) else None
    inputs_map = task_input.get(inputs_param) if isinstance(inputs_param, str) else None
    if not isinstance(tasks, list):
        raise ValueError(f"Input to the dynamically forked tasks is not a list: {tasks_param}")
    if inputs_map is not None and not isinstance(inputs_map, dict):
        raise ValueError(f"Input to the dynamically forked tasks is not a map: {inputs_param}")
    out = []
    for i, node in enumerate(tasks):
        if not isinstance(node, dict) or not isinstance(node.get("taskReferenceName"), str):
            # Conductor's wording (a TerminateWorkflowException there), so that
            # callers matching on it see the same text
            raise ValueError(
                f"Input '{tasks_param}' is invalid: task {i} is not a WorkflowTask "
                "with a taskReferenceName"
            )
        ref = node["taskReferenceName"]
        node_input = (inputs_map or {}).get(ref)
        if node_input is None:
            node_input = node.get("inputParameters") or {}
        node = {"name": node.get("name") or ref, "type": node.get("type") or "SIMPLE", **node}
        out.append((node, node_input if isinstance(node_input, dict) else {}))
    return out


def _make_join(
    tr: Transition, join_wt: dict[str, Any] | None, scope: Scope, join_on: list[str] | None
) -> Task | None:
    if join_wt is None or join_wt.get("type") not in ("JOIN", None) or tr.wf.status.terminal:
        return None
    join = tr.new_task(join_wt, scope, resolve_input=True)
    refs = join_on if join_on is not None else [str(r) for r in (join_wt.get("joinOn") or [])]
    join.input = {**join.input, "joinOn": refs}
    tr.set_status(join, TaskStatus.IN_PROGRESS, None)
    return join


def check_join(tr: Transition, join: Task) -> None:
    if join.status.terminal:
        return
    refs = join.input.get("joinOn") or []
    output: dict[str, Any] = {}
    failures: list[Task] = []
    with_errors = False
    optional_errors: list[str] = []
    for ref in refs:
        member = _in_scope(tr, str(ref), join)
        if member is None or not member.status.terminal:
            return
        if member.output:
            output[str(ref)] = member.output
        if member.status is TaskStatus.COMPLETED_WITH_ERRORS:
            with_errors = True
            if member.wt.get("optional"):
                optional_errors.append(f"{member.def_name}/{member.task_id}")
        elif not member.status.successful:
            if member.wt.get("optional"):
                with_errors = True
            else:
                failures.append(member)
    join.output = output
    if failures:
        reasons = "; ".join(f"{t.ref}: {t.reason or t.status.value}" for t in failures)
        tr.finish(join, TaskStatus.FAILED, f"Join failed: {reasons}")
    else:
        # Join.execute names the optional members that failed, in its own words
        reason = " ".join([*optional_errors, "completed with errors"]) if optional_errors else None
        tr.finish(
            join, TaskStatus.COMPLETED_WITH_ERRORS if with_errors else TaskStatus.COMPLETED, reason
        )


def _in_scope(tr: Transition, base_ref: str, anchor: Task) -> Task | None:
    """Newest attempt of `base_ref` in the same loop iteration as `anchor`."""
    for task in reversed(tr.wf.tasks):
        if (task.base_ref == base_ref or task.ref == base_ref) and (
            task.loop_id == anchor.loop_id and task.iteration == anchor.iteration
        ):
            return task
    return None


def schedule_exclusive_join(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    task = tr.new_task(wt, scope)
    refs = [str(r) for r in (wt.get("joinOn") or [])]
    chosen: Task | None = None
    for ref in refs:
        found = _in_scope(tr, ref, task)
        if found is not None and found.status.terminal:
            chosen = found
            break
    if chosen is None:
        for ref in [str(r) for r in (wt.get("defaultExclusiveJoinTask") or [])]:
            found = _in_scope(tr, ref, task)
            if found is not None and found.status.terminal:
                chosen = found
                break
    if chosen is None:
        tr.finish(task, TaskStatus.COMPLETED, None)
        return
    task.output = dict(chosen.output)
    tr.finish(
        task, TaskStatus.COMPLETED if chosen.status.successful else TaskStatus.FAILED, chosen.reason
    )


def schedule_join(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    join = _make_join(tr, wt, scope, None)
    if join is not None:
        check_join(tr, join)
