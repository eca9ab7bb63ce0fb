"""Conductor-shaped views of execution state.

Three consumers read the state through Conductor's eyes:

- the expression context (`ExpressionContext`): `${workflow.input.x}` and
  `${ref.output.y}` resolve against the same maps Conductor's ParametersUtils
  builds (workflow fields, and per task ref input/output/status/...; loop
  iterations are visible under their base ref, the newest winning);
- the HTTP API and `edged exec`: `workflow_json` / `task_json` produce the
  Workflow and Task JSON documents Conductor's REST API returns;
- history and live views, which reuse `task_json`.

The context is lazy: a template names one or two roots, so building a map of
every task for every scheduling would make long executions quadratic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from operator import attrgetter
from typing import Any

from edged.core.model import Task, Workflow


def workflow_view(wf: Workflow) -> dict[str, Any]:
    return {
        "input": wf.input,
        "output": wf.output,
        "status": wf.status._value_,
        "workflowId": wf.workflow_id,
        "parentWorkflowId": wf.parent_id,
        "parentWorkflowTaskId": wf.parent_task_id,
        "workflowType": wf.name,
        "version": wf.version,
        "correlationId": wf.correlation_id,
        "reasonForIncompletion": wf.reason,
        "schemaVersion": wf.definition.get("schemaVersion", 2),
        "variables": wf.variables,
        "taskToDomain": wf.task_to_domain,
        "createTime": wf.created_ms,
    }


def task_view(wf: Workflow, task: Task) -> dict[str, Any]:
    return {
        "input": task.input,
        "output": task.output,
        "taskType": task.task_type,
        "status": task.status._value_,
        "referenceTaskName": task.ref,
        "retryCount": task.retry_count,
        "correlationId": wf.correlation_id,
        "pollCount": task.poll_count,
        "taskDefName": task.def_name,
        "scheduledTime": task.scheduled_ms,
        "startTime": task.start_ms,
        "endTime": task.end_ms,
        "workflowInstanceId": wf.workflow_id,
        "workflowType": wf.name,
        "taskId": task.task_id,
        "reasonForIncompletion": task.reason,
        "callbackAfterSeconds": task.callback_after_s,
        "workerId": task.worker_id,
        "iteration": reported_iteration(task),
        "subWorkflowId": task.subworkflow_id,
    }


# The same views, one reader per key (same keys, same order), for `_LazyView`: a
# reference reads one or two keys of a view, so building all 14 or 20 entries (and the
# workflow's name, version and status) for every reference was most of its cost.
# A reader takes the workflow (False) or the task (True); attrgetters run no Python frame.
_Reader = tuple[Callable[[Any], Any], bool]
_WORKFLOW_READERS: dict[str, _Reader] = {
    "input": (attrgetter("input"), False),
    "output": (attrgetter("output"), False),
    "status": (lambda wf: wf.status._value_, False),
    "workflowId": (attrgetter("workflow_id"), False),
    "parentWorkflowId": (attrgetter("parent_id"), False),
    "parentWorkflowTaskId": (attrgetter("parent_task_id"), False),
    "workflowType": (attrgetter("name"), False),
    "version": (attrgetter("version"), False),
    "correlationId": (attrgetter("correlation_id"), False),
    "reasonForIncompletion": (attrgetter("reason"), False),
    "schemaVersion": (lambda wf: wf.definition.get("schemaVersion", 2), False),
    "variables": (attrgetter("variables"), False),
    "taskToDomain": (attrgetter("task_to_domain"), False),
    "createTime": (attrgetter("created_ms"), False),
}
_TASK_READERS: dict[str, _Reader] = {
    "input": (attrgetter("input"), True),
    "output": (attrgetter("output"), True),
    "taskType": (attrgetter("task_type"), True),
    "status": (lambda t: t.status._value_, True),
    "referenceTaskName": (attrgetter("ref"), True),
    "retryCount": (attrgetter("retry_count"), True),
    "correlationId": (attrgetter("correlation_id"), False),
    "pollCount": (attrgetter("poll_count"), True),
    "taskDefName": (attrgetter("def_name"), True),
    "scheduledTime": (attrgetter("scheduled_ms"), True),
    "startTime": (attrgetter("start_ms"), True),
    "endTime": (attrgetter("end_ms"), True),
    "workflowInstanceId": (attrgetter("workflow_id"), False),
    "workflowType": (attrgetter("name"), False),
    "taskId": (attrgetter("task_id"), True),
    "reasonForIncompletion": (attrgetter("reason"), True),
    "callbackAfterSeconds": (attrgetter("callback_after_s"), True),
    "workerId": (attrgetter("worker_id"), True),
    "iteration": (lambda t: reported_iteration(t), True),
    "subWorkflowId": (attrgetter("subworkflow_id"), True),
}


class _LazyView(Mapping[str, Any]):
    """`workflow_view` / `task_view` read key by key, when a reference asks.

    Equal to the dict (same keys and order); each value is read from the live state
    when asked for, which is the same value within the one `resolve` call a context
    serves (resolving changes no state).
    """

    __slots__ = ("_readers", "_task", "_wf")

    def __init__(self, readers: dict[str, _Reader], wf: Workflow, task: Task | None) -> None:
        self._readers = readers
        self._wf = wf
        self._task = task

    def __getitem__(self, key: str) -> Any:
        read, of_task = self._readers[key]
        return read(self._task if of_task else self._wf)

    def get(self, key: str, default: Any = None) -> Any:
        found = self._readers.get(key)
        if found is None:
            return default
        read, of_task = found
        return read(self._task if of_task else self._wf)

    def __contains__(self, key: object) -> bool:
        return key in self._readers

    def __iter__(self) -> Iterator[str]:
        return iter(self._readers)

    def __len__(self) -> int:
        return len(self._readers)


_MISSING: Any = object()


class ExpressionContext(Mapping[str, Any]):
    """Lazy mapping: "workflow" -> workflow view, ref -> newest task view (both lazy)."""

    __slots__ = ("_cache", "_wf")

    def __init__(self, wf: Workflow) -> None:
        self._wf = wf
        self._cache: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        # Overridden: Mapping.get goes through __getitem__ and a KeyError per miss,
        # and every `${ref...}` reference probes here first.
        value = self._cache.get(key, _MISSING)
        if value is not _MISSING:
            return value
        if key == "workflow":
            value = _LazyView(_WORKFLOW_READERS, self._wf, None)
        else:
            task = self._find(key)
            if task is None:
                return default
            value = _LazyView(_TASK_READERS, self._wf, task)
        self._cache[key] = value
        return value

    def get_in(self, root: str, key: str, default: Any = None) -> Any:
        """`self.get(root)` and then `.get(key)` of that view in one call (`default` if
        either is absent), without building the workflow's view: parameters mostly read
        `${workflow.input...}` or `${ref.output...}` (see `resolve_params`)."""
        if root == "workflow":
            readers, task = _WORKFLOW_READERS, None
        else:
            view = self.get(root, _MISSING)
            if view is _MISSING:
                return default
            readers, task = view._readers, view._task
        found = readers.get(key)
        if found is None:
            return default
        read, of_task = found
        return read(task if of_task else self._wf)

    def _find(self, key: str) -> Task | None:
        for task in reversed(self._wf.tasks):
            if task.ref == key or (task.iteration and task.base_ref == key):
                return task
        return None

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return key == "workflow" or self._find(key) is not None

    def __iter__(self) -> Iterator[str]:
        yield "workflow"
        seen: set[str] = set()
        for task in self._wf.tasks:
            for key in (task.ref, task.base_ref):
                if key not in seen:
                    seen.add(key)
                    yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)


def conductor_task_type(task: Task) -> str:
    """Conductor reports a SIMPLE task under its task def name (SimpleTaskMapper) and
    both kinds of fork as FORK."""
    if task.task_type == "SIMPLE":
        return task.def_name
    return "FORK" if task.task_type in ("FORK_JOIN", "FORK_JOIN_DYNAMIC") else task.task_type


def task_json(wf: Workflow, task: Task) -> dict[str, Any]:
    """Conductor's Task JSON."""
    taskdef = task.taskdef or {}
    iteration = reported_iteration(task)
    doc: dict[str, Any] = {
        "taskType": conductor_task_type(task),
        "status": task.status._value_,
        "inputData": task.input,
        "referenceTaskName": task.ref,
        "retryCount": task.retry_count,
        "seq": task.seq,
        "correlationId": wf.correlation_id,
        "pollCount": task.poll_count,
        "taskDefName": task.def_name,
        "scheduledTime": task.scheduled_ms,
        "startTime": task.start_ms,
        "endTime": task.end_ms,
        "updateTime": task.update_ms,
        "startDelayInSeconds": task.start_delay_s,
        "retriedTaskId": task.retried_task_id,
        "retried": task.retried,
        "executed": task.status.terminal,
        "callbackFromWorker": True,
        "responseTimeoutSeconds": taskdef.get("responseTimeoutSeconds", 0),
        "workflowInstanceId": wf.workflow_id,
        "workflowType": wf.name,
        "taskId": task.task_id,
        "reasonForIncompletion": task.reason,
        "callbackAfterSeconds": task.callback_after_s,
        "workerId": task.worker_id,
        "outputData": task.output,
        "workflowTask": task.wt,
        "domain": wf.task_to_domain.get(task.def_name) or wf.task_to_domain.get("*"),
        "rateLimitPerFrequency": taskdef.get("rateLimitPerFrequency", 0),
        "rateLimitFrequencyInSeconds": taskdef.get("rateLimitFrequencyInSeconds", 1),
        "workflowPriority": wf.priority,
        "iteration": iteration,
        "subworkflowChanged": False,
        "loopOverTask": iteration > 0,
        "taskDefinition": task.taskdef,
        "queueWaitTime": max(0, task.start_ms - task.scheduled_ms) if task.start_ms else 0,
    }
    if task.subworkflow_id:
        doc["subWorkflowId"] = task.subworkflow_id
    return doc


def workflow_json(wf: Workflow, *, include_tasks: bool = True) -> dict[str, Any]:
    """Conductor's Workflow JSON."""
    doc: dict[str, Any] = {
        "ownerApp": wf.definition.get("ownerApp"),
        "createTime": wf.created_ms,
        "updateTime": wf.updated_ms,
        "createdBy": wf.definition.get("createdBy"),
        "status": wf.status.value,
        "startTime": wf.created_ms,
        "endTime": wf.ended_ms,
        "workflowId": wf.workflow_id,
        "parentWorkflowId": wf.parent_id,
        "parentWorkflowTaskId": wf.parent_task_id,
        "tasks": [task_json(wf, t) for t in wf.tasks] if include_tasks else [],
        "input": wf.input,
        "output": wf.output,
        "correlationId": wf.correlation_id,
        "reasonForIncompletion": wf.reason,
        "taskToDomain": wf.task_to_domain,
        "failedReferenceTaskNames": sorted(set(wf.failed_refs)),
        "failedTaskNames": sorted({t.def_name for t in wf.tasks if t.ref in wf.failed_refs}),
        "workflowDefinition": wf.definition,
        "priority": wf.priority,
        "variables": wf.variables,
        "lastRetriedTime": 0,
        "idempotencyKey": wf.idempotency_key,
        "workflowName": wf.name,
        "workflowVersion": wf.version,
    }
    return doc


def reported_iteration(task: Task) -> int:
    """Conductor's DoWhile sets its own task's iteration to the current one
    (`${loop['iteration']}` and the Task JSON read it); body tasks keep theirs."""
    if task.task_type == "DO_WHILE":
        value = task.output.get("iteration")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return task.iteration
