"""Scheduling work tasks and the operators that are not forks.

Theory of operation
-------------------
Each `schedule_<kind>(tr, wt, scope)` turns one definition node into a task:
work (SIMPLE, HTTP and any type edged does not run itself) is SCHEDULED and
dispatched; DYNAMIC resolves its task name from the input first.  SWITCH /
DECISION, SET_VARIABLE, INLINE / LAMBDA / JSON_JQ_TRANSFORM, NOOP, TERMINATE
and EVENT finish on the spot; SUB_WORKFLOW, START_WORKFLOW, WAIT and HUMAN
stay IN_PROGRESS until a child, a signal or a timer.  A SWITCH schedules the
first node of the chosen case right away.  All of it is pure: side effects
leave as commands (StartWorkflow, PublishEvent) or timers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edged import expr
from edged.core.commands import PublishEvent, StartWorkflow
from edged.core.model import TaskStatus, WorkflowStatus
from edged.core.navigate import first_task
from edged.core.policies import parse_duration_s, parse_until_ms

if TYPE_CHECKING:
    from edged.core.decider import Scope, Transition


def schedule_work(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    task = tr.new_task(wt, scope)
    task.start_delay_s = max(0, _int(wt.get("startDelay")))
    tr.dispatch(task)


def schedule_dynamic(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
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


def schedule_switch(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    from edged.core.operators import schedule
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
    # the mappers also put the evaluated case into the task's input as "case"
    task.input = {**task.input, "case": shown}
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


def schedule_do_while(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    from edged.core import loops

    loops.start_loop(tr, wt, scope)


def schedule_sub_workflow(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
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


def schedule_start_workflow(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
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


def schedule_wait(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
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


def schedule_human(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    task = tr.new_task(wt, scope)
    task.start_ms = tr.at_ms
    tr.set_status(task, TaskStatus.IN_PROGRESS, None)


def schedule_set_variable(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    task = tr.new_task(wt, scope)
    tr.wf.variables.update(task.input)
    tr.touch()
    tr.finish(task, TaskStatus.COMPLETED, None)


def schedule_script(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
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
                task.output = {"result": expr.eval_inline(expression, task.input)}
            else:
                raise ValueError(f"unknown evaluatorType {evaluator!r}")
        elif task.task_type == "LAMBDA":
            script = task.input.get("scriptExpression") or wt.get("scriptExpression")
            if not isinstance(script, str):
                raise ValueError("LAMBDA needs the input 'scriptExpression'")
            task.output = {"result": expr.eval_lambda(script, task.input)}
        else:
            query = task.input.get("queryExpression")
            if not isinstance(query, str):
                raise ValueError("JSON_JQ_TRANSFORM needs the input 'queryExpression'")
            task.output = expr.jq_transform(query, task.input)
    except Exception as exc:  # script errors fail the task, never the engine
        task.output = {"error": str(exc)}
        tr.finish(task, TaskStatus.FAILED, str(exc))
        return
    tr.finish(task, TaskStatus.COMPLETED, None)


def schedule_noop(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    tr.finish(tr.new_task(wt, scope), TaskStatus.COMPLETED, None)


def schedule_terminate(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
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
    if reason is None or not str(reason).strip():
        # WorkflowExecutor's wording when the TERMINATE gives no reason
        reason = f"Workflow is {status_text} by TERMINATE task: {task.task_id}"
    tr.end_workflow(
        status,
        str(reason),
        failed=task if status is WorkflowStatus.FAILED else None,
        output=wf_output,
    )


def schedule_event(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
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


def schedule_publish(tr: Transition, wt: dict[str, Any], scope: Scope, sink: str) -> None:
    """A task type registered with `operators.register_publish_type`: its input goes to
    `sink` through the outbox; the sink completes (or fails) the task once delivered.
    With input `confirm: false` the task completes at once: the outbox row (committed with
    this transition) is the promise of delivery, and the sink only acknowledges the row."""
    task = tr.new_task(wt, scope)
    payload = dict(task.input)
    payload["scheduledAtMs"] = tr.at_ms
    tr.decision.commands.append(PublishEvent(sink, payload, tr.wf.workflow_id, task.task_id))
    if task.input.get("confirm") is False:
        task.output = {"topic": task.input.get("topic"), "queued": True}
        tr.finish(task, TaskStatus.COMPLETED, None)
    else:
        tr.set_status(task, TaskStatus.IN_PROGRESS, None)


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
