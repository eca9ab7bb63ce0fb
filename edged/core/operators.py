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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edged.core.commands import PublishEvent, StartWorkflow
from edged.core.model import OPERATOR_TYPES, Task, TaskStatus, WorkflowStatus
from edged.core.navigate import first_task
from edged.core.policies import max_retries, parse_duration_s, parse_until_ms, retry_delay_s

if TYPE_CHECKING:
    from edged.core.decider import Scope, Transition

NOT_RETRIED = OPERATOR_TYPES - {"SUB_WORKFLOW"}


def schedule(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    wf = tr.wf
    base_ref = str(wt.get("taskReferenceName", ""))
    from edged.core.model import with_iteration

    ref = with_iteration(base_ref, scope.iteration) if scope.iteration else base_ref
    existing = wf.latest_by_ref(ref)
    if existing is not None and existing.status is TaskStatus.SKIPPED and not existing.end_ms:
        # skipped ahead of time through the API: count it as done and move on
        tr.set_status(existing, TaskStatus.SKIPPED, existing.reason)
        tr.queue.append(existing.task_id)
        return
    kind = str(wt.get("type") or "SIMPLE")
    handler = _SCHEDULERS.get(kind, _schedule_work)
    handler(tr, wt, scope)


# ----------------------------------------------------------------- operators


def _schedule_work(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    task = tr.new_task(wt, scope)
    task.start_delay_s = max(0, _int(wt.get("startDelay")))
    tr.dispatch(task)


def _schedule_dynamic(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    from edged.core.views import ExpressionContext
    from edged.expr import resolve

    param = wt.get("dynamicTaskNameParam")
    params = wt.get("inputParameters") or {}
    name: Any = None
    if isinstance(param, str) and isinstance(params, dict):
        resolved = resolve(params, ExpressionContext(tr.wf), env=tr.decider.env)
        if isinstance(resolved, dict):
            name = resolved.get(param)
    if not isinstance(name, str) or not name:
        task = tr.new_task(wt, scope, task_type="DYNAMIC")
        tr.finish(
            task,
            TaskStatus.FAILED,
            f"Cannot map a dynamic task based on the parameter and input. Parameter= {param}, input= {name!r}",
        )
        return
    task = tr.new_task(wt, scope, task_type="SIMPLE", def_name=name)
    tr.dispatch(task)


def _schedule_switch(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    from edged.expr import switch_case

    task = tr.new_task(wt, scope)
    try:
        if task.task_type == "DECISION":
            case = _decision_case(wt, task.input)
        else:
            case = switch_case(
                str(wt.get("evaluatorType") or "value-param"),
                str(wt.get("expression") or ""),
                task.input,
            )
    except Exception as exc:  # an expression error fails the task, never the engine
        tr.finish(task, TaskStatus.FAILED, f"Error while evaluating the case: {exc}")
        return
    cases = wt.get("decisionCases") or {}
    chosen = cases.get(case) if isinstance(cases, dict) and case is not None else None
    if chosen is None:
        chosen = wt.get("defaultCase") or []
    # Conductor stringifies the case value (a missing one is "null") and reports it
    # as caseOutput (DECISION) or evaluationResult (SWITCH)
    shown = "null" if case is None else case
    if task.task_type == "DECISION":
        task.output = {"caseOutput": [shown]}
    else:
        task.output = {"evaluationResult": [shown], "selectedCase": shown}
    tr.set_status(task, TaskStatus.COMPLETED, None)
    first = first_task(chosen)
    if first is None:
        tr.queue.append(task.task_id)
    else:
        schedule(tr, first, scope)


def _decision_case(wt: dict[str, Any], task_input: dict[str, Any]) -> str | None:
    from edged.expr import eval_case

    expression = wt.get("caseExpression")
    if isinstance(expression, str) and expression:
        return eval_case(expression, task_input)
    param = wt.get("caseValueParam")
    value = task_input.get(param) if isinstance(param, str) else None
    return None if value is None else _case_text(value)


def _case_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _schedule_fork(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    fork = tr.new_task(wt, scope)
    join_wt = tr.index.next_in_list(str(wt.get("taskReferenceName", "")))
    branches = [b for b in (wt.get("forkTasks") or []) if isinstance(b, list) and b]
    tr.set_status(fork, TaskStatus.COMPLETED, None)
    # Conductor's order: the fork, every branch's first task, then the JOIN
    for branch in branches:
        first = first_task(branch)
        if first is not None:
            schedule(tr, first, scope)
    join = _make_join(tr, join_wt, scope, None)
    if join is not None:
        check_join(tr, join)


def _schedule_dynamic_fork(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    from edged.core.decider import Scope as ScopeType

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
        task_wt = {**node, "inputParameters": {}}
        kind = str(node.get("type") or "SIMPLE")
        if kind in ("SIMPLE", "HTTP") or kind not in OPERATOR_TYPES:
            task = tr.new_task(task_wt, branch_scope, resolve_input=False)
            task.input = node_input
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
            raise ValueError(
                f"dynamic fork task {i} is not a WorkflowTask with a taskReferenceName"
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
    if join_wt is None or join_wt.get("type") not in ("JOIN", None):
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
    for ref in refs:
        member = _in_scope(tr, str(ref), join)
        if member is None or not member.status.terminal:
            return
        if member.output:
            output[str(ref)] = member.output
        if member.status is TaskStatus.COMPLETED_WITH_ERRORS:
            with_errors = True
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
        tr.finish(
            join, TaskStatus.COMPLETED_WITH_ERRORS if with_errors else TaskStatus.COMPLETED, None
        )


def _in_scope(tr: Transition, base_ref: str, anchor: Task) -> Task | None:
    """Newest attempt of `base_ref` in the same loop iteration as `anchor`."""
    for task in reversed(tr.wf.tasks):
        if (task.base_ref == base_ref or task.ref == base_ref) and (
            task.loop_id == anchor.loop_id and task.iteration == anchor.iteration
        ):
            return task
    return None


def _schedule_exclusive_join(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
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


def _schedule_join(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    join = _make_join(tr, wt, scope, None)
    if join is not None:
        check_join(tr, join)


def _schedule_do_while(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    from edged.core import loops

    loops.start_loop(tr, wt, scope)


def _schedule_sub_workflow(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    from edged.core.decider import derive_id
    from edged.core.views import ExpressionContext
    from edged.expr import resolve

    task = tr.new_task(wt, scope)
    param = wt.get("subWorkflowParam") or {}
    name = param.get("name") if isinstance(param, dict) else None
    version = param.get("version") if isinstance(param, dict) else None
    if isinstance(name, str) or isinstance(version, str):
        # SubWorkflowTaskMapper resolves ${...} in the name and version
        wanted = resolve(
            {"name": name, "version": version}, ExpressionContext(tr.wf), env=tr.decider.env
        )
        if isinstance(wanted, dict):
            name = wanted.get("name")
            version = wanted.get("version")
            if isinstance(version, str) and version.isdigit():
                version = int(version)
    inline = param.get("workflowDefinition") if isinstance(param, dict) else None
    if isinstance(inline, dict):
        name = name or inline.get("name")
    if not isinstance(name, str) or not name:
        tr.finish(task, TaskStatus.FAILED, "SUB_WORKFLOW needs subWorkflowParam.name")
        return
    child_input = task.input.get("workflowInput")
    if not isinstance(child_input, dict) or not child_input:
        child_input = dict(task.input)
    task.input = {**task.input, "subWorkflowName": name, "subWorkflowVersion": version}
    child_id = derive_id(task.task_id, "child", str(task.generation))
    task.subworkflow_id = child_id
    task.output = {"subWorkflowId": child_id}
    task.start_ms = tr.at_ms
    tr.set_status(task, TaskStatus.IN_PROGRESS, None)
    to_domain = param.get("taskToDomain") if isinstance(param, dict) else None
    tr.emit(
        StartWorkflow(
            workflow_id=child_id,
            name=name,
            version=version if isinstance(version, int) else None,
            input=child_input,
            definition=inline if isinstance(inline, dict) else None,
            correlation_id=tr.wf.correlation_id,
            parent_id=tr.wf.workflow_id,
            parent_task_id=task.task_id,
            task_to_domain=to_domain if isinstance(to_domain, dict) else dict(tr.wf.task_to_domain),
            priority=tr.wf.priority,
            requested_by=(tr.wf.workflow_id, task.task_id),
        )
    )


def _schedule_start_workflow(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    from edged.core.decider import derive_id

    task = tr.new_task(wt, scope)
    request = task.input.get("startWorkflow")
    if not isinstance(request, dict) or not isinstance(request.get("name"), str):
        tr.finish(task, TaskStatus.FAILED, "START_WORKFLOW needs input startWorkflow.name")
        return
    new_id = derive_id(task.task_id, "start", str(task.generation))
    version = request.get("version")
    child_input = request.get("input")
    tr.set_status(task, TaskStatus.IN_PROGRESS, None)
    tr.emit(
        StartWorkflow(
            workflow_id=new_id,
            name=request["name"],
            version=version if isinstance(version, int) else None,
            input=child_input if isinstance(child_input, dict) else {},
            correlation_id=request.get("correlationId")
            if isinstance(request.get("correlationId"), str)
            else None,
            task_to_domain=_str_map(request.get("taskToDomain")),
            requested_by=(tr.wf.workflow_id, task.task_id),
        )
    )


def _schedule_wait(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    task = tr.new_task(wt, scope)
    tr.set_status(task, TaskStatus.IN_PROGRESS, None)
    task.start_ms = tr.at_ms
    duration = task.input.get("duration")
    until = task.input.get("until")
    try:
        if isinstance(duration, str) and duration.strip():
            fire_at = tr.at_ms + parse_duration_s(duration) * 1000
        elif isinstance(until, str) and until.strip():
            fire_at = parse_until_ms(until)
        else:
            return  # waits for a signal
    except ValueError as exc:
        tr.finish(task, TaskStatus.FAILED_WITH_TERMINAL_ERROR, str(exc))
        return
    tr.arm_timer(task, "wait", fire_at)


def _schedule_human(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    task = tr.new_task(wt, scope)
    task.start_ms = tr.at_ms
    tr.set_status(task, TaskStatus.IN_PROGRESS, None)


def _schedule_set_variable(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    task = tr.new_task(wt, scope)
    tr.wf.variables.update(task.input)
    tr.touch()
    tr.finish(task, TaskStatus.COMPLETED, None)


def _schedule_script(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    from edged.expr import eval_inline, eval_lambda, jq_transform

    task = tr.new_task(wt, scope)
    try:
        if task.task_type == "INLINE":
            evaluator = task.input.get("evaluatorType", "javascript")
            expression = task.input.get("expression")
            if not isinstance(expression, str):
                raise ValueError("INLINE needs the input 'expression'")
            if evaluator == "value-param":
                task.output = {"result": task.input.get(expression)}
            elif evaluator in ("javascript", "graaljs"):
                task.output = {"result": eval_inline(expression, task.input)}
            else:
                raise ValueError(f"unknown evaluatorType {evaluator!r}")
        elif task.task_type == "LAMBDA":
            script = task.input.get("scriptExpression") or wt.get("scriptExpression")
            if not isinstance(script, str):
                raise ValueError("LAMBDA needs the input 'scriptExpression'")
            task.output = {"result": eval_lambda(script, task.input)}
        else:
            query = task.input.get("queryExpression")
            if not isinstance(query, str):
                raise ValueError("JSON_JQ_TRANSFORM needs the input 'queryExpression'")
            task.output = jq_transform(query, task.input)
    except Exception as exc:  # script errors fail the task, never the engine
        task.output = {"error": str(exc)}
        tr.finish(task, TaskStatus.FAILED, str(exc))
        return
    tr.finish(task, TaskStatus.COMPLETED, None)


def _schedule_noop(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    tr.finish(tr.new_task(wt, scope), TaskStatus.COMPLETED, None)


def _schedule_terminate(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    task = tr.new_task(wt, scope)
    status_text = str(task.input.get("terminationStatus") or "COMPLETED").upper()
    reason = task.input.get("terminationReason")
    out = task.input.get("workflowOutput")
    task.output = {"output": out} if out is not None else {}
    tr.set_status(task, TaskStatus.COMPLETED, None)
    try:
        status = WorkflowStatus(status_text)
    except ValueError:
        status = WorkflowStatus.FAILED
    if status not in (WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.TERMINATED):
        status = WorkflowStatus.FAILED
    wf_output = out if isinstance(out, dict) else ({} if out is None else {"output": out})
    tr.end_workflow(
        status,
        str(reason) if reason is not None else None,
        failed=task if status is WorkflowStatus.FAILED else None,
        output=wf_output,
    )


def _schedule_event(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    task = tr.new_task(wt, scope)
    sink = wt.get("sink") or task.input.get("sink") or "conductor"
    sink_text = str(sink)
    if sink_text == "conductor":
        sink_text = f"conductor:{tr.wf.name}:{task.ref}"
    payload = {k: v for k, v in task.input.items() if k != "sink"}
    payload.update(
        {
            "workflowInstanceId": tr.wf.workflow_id,
            "workflowType": tr.wf.name,
            "workflowVersion": tr.wf.version,
            "correlationId": tr.wf.correlation_id,
        }
    )
    tr.emit(
        PublishEvent(
            sink=sink_text, payload=payload, workflow_id=tr.wf.workflow_id, task_id=task.task_id
        )
    )
    task.output = {**payload, "event_produced": sink_text, "sink": sink_text}
    if wt.get("asyncComplete"):
        tr.set_status(task, TaskStatus.IN_PROGRESS, None)
    else:
        tr.finish(task, TaskStatus.COMPLETED, None)


_SCHEDULERS = {
    "SWITCH": _schedule_switch,
    "DECISION": _schedule_switch,
    "FORK_JOIN": _schedule_fork,
    "FORK_JOIN_DYNAMIC": _schedule_dynamic_fork,
    "JOIN": _schedule_join,
    "EXCLUSIVE_JOIN": _schedule_exclusive_join,
    "DO_WHILE": _schedule_do_while,
    "SUB_WORKFLOW": _schedule_sub_workflow,
    "START_WORKFLOW": _schedule_start_workflow,
    "WAIT": _schedule_wait,
    "HUMAN": _schedule_human,
    "SET_VARIABLE": _schedule_set_variable,
    "INLINE": _schedule_script,
    "LAMBDA": _schedule_script,
    "JSON_JQ_TRANSFORM": _schedule_script,
    "NOOP": _schedule_noop,
    "TERMINATE": _schedule_terminate,
    "EVENT": _schedule_event,
    "DYNAMIC": _schedule_dynamic,
}


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
    from edged.core.decider import derive_id

    wf = tr.wf
    task.retried = True
    tr.changed(task)
    seq = wf.next_seq
    wf.next_seq += 1
    again = Task(
        task_id=derive_id(wf.workflow_id, str(seq)),
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
    if again.task_type == "SUB_WORKFLOW":
        wt = task.wt
        wf.tasks.pop()
        wf.next_seq -= 1
        from edged.core.decider import Scope

        before = len(wf.tasks)
        _schedule_sub_workflow(tr, wt, Scope(task.loop_id, task.iteration, task.fork_id))
        for created in wf.tasks[before:]:
            created.retry_count = task.retry_count + 1
            created.retried_task_id = task.task_id
        return wf.tasks[-1]
    tr.dispatch(again)
    return again


def advance(tr: Transition, task: Task) -> None:
    from edged.core import loops

    wf = tr.wf
    if task.fork_id is not None and tr.index.slot(task.base_ref) is None:
        _check_open_joins(tr)
        return
    slot = tr.index.slot(task.base_ref)
    nxt = tr.index.next_in_list(task.base_ref)
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


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
