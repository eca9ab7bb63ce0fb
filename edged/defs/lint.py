"""Lint warnings: things Conductor accepts but that are probably mistakes.

Theory of operation: unknown keys are not faults, because Conductor ignores
them and edged itself adds keys (`triggers`).  But a misspelt optional key
(`inputParamters`) silently does nothing, so `lint_warnings` names every key
that is not part of Conductor's model, with a "did you mean" when a known key
is close.  It also notes HTTP and KAFKA_PUBLISH tasks whose request is not in
the definition (fine only if a registered TaskDef's inputTemplate supplies it,
which Conductor checks against its metadata store and edged cannot here).
Warnings never block loading.
"""

from __future__ import annotations

from typing import Any

from edged.defs.faults import Fault, child, suggest
from edged.defs.validate import MAX_TASK_DEPTH, iter_child_lists

WORKFLOW_KEYS = frozenset(
    [
        "name",
        "description",
        "version",
        "tasks",
        "inputParameters",
        "outputParameters",
        "failureWorkflow",
        "schemaVersion",
        "restartable",
        "workflowStatusListenerEnabled",
        "workflowStatusListenerSink",
        "ownerEmail",
        "ownerApp",
        "timeoutPolicy",
        "timeoutSeconds",
        "variables",
        "inputTemplate",
        "rateLimitConfig",
        "inputSchema",
        "outputSchema",
        "enforceSchema",
        "metadata",
        "cacheConfig",
        "maskedFields",
        "onStateChange",
        "createTime",
        "updateTime",
        "createdBy",
        "updatedBy",
        "accessPolicy",
        "triggers",
    ]
)
TASK_KEYS = frozenset(
    [
        "name",
        "taskReferenceName",
        "description",
        "inputParameters",
        "type",
        "dynamicTaskNameParam",
        "caseValueParam",
        "caseExpression",
        "scriptExpression",
        "decisionCases",
        "dynamicForkJoinTasksParam",
        "dynamicForkTasksParam",
        "dynamicForkTasksInputParamName",
        "defaultCase",
        "forkTasks",
        "startDelay",
        "subWorkflowParam",
        "joinOn",
        "sink",
        "optional",
        "taskDefinition",
        "rateLimited",
        "defaultExclusiveJoinTask",
        "asyncComplete",
        "loopCondition",
        "loopOver",
        "retryCount",
        "evaluatorType",
        "expression",
        "onStateChange",
        "joinStatus",
        "cacheConfig",
        "permissive",
        "items",
        "callbackFromWorker",
        "joinMode",
    ]
)
TASKDEF_KEYS = frozenset(
    [
        "name",
        "description",
        "retryCount",
        "timeoutSeconds",
        "inputKeys",
        "outputKeys",
        "timeoutPolicy",
        "retryLogic",
        "retryDelaySeconds",
        "responseTimeoutSeconds",
        "concurrentExecLimit",
        "inputTemplate",
        "rateLimitPerFrequency",
        "rateLimitFrequencyInSeconds",
        "isolationGroupId",
        "executionNameSpace",
        "ownerEmail",
        "pollTimeoutSeconds",
        "backoffScaleFactor",
        "baseType",
        "totalTimeoutSeconds",
        "inputSchema",
        "outputSchema",
        "enforceSchema",
        "ownerApp",
        "createTime",
        "updateTime",
        "createdBy",
        "updatedBy",
    ]
)
SUB_WORKFLOW_KEYS = frozenset(
    [
        "name",
        "version",
        "taskToDomain",
        "workflowDefinition",
        "idempotencyKey",
        "idempotencyStrategy",
        "priority",
    ]
)
_REQUEST_INPUTS = {"HTTP": "http_request", "KAFKA_PUBLISH": "kafka_request"}


def lint_warnings(doc: Any) -> list[Fault]:
    """Warnings for a workflow or task definition (unknown keys, likely typos)."""
    warnings: list[Fault] = []
    if not isinstance(doc, dict):
        return warnings
    if "tasks" in doc:
        _workflow(doc, "", warnings, 0)
    elif not ("event" in doc and "actions" in doc):
        _unknown_keys(doc, "", TASKDEF_KEYS, warnings)
    return warnings


def _unknown_keys(obj: dict[str, Any], path: str, known: frozenset[str], out: list[Fault]) -> None:
    for key in obj:
        if key not in known:
            out.append(Fault(child(path, key), f"unknown key{suggest(key, sorted(known))}"))


def _workflow(doc: dict[str, Any], path: str, out: list[Fault], depth: int) -> None:
    _unknown_keys(doc, path, WORKFLOW_KEYS, out)
    stack: list[tuple[Any, str, int]] = [(doc.get("tasks"), child(path, "tasks"), depth)]
    while stack:
        tasks, where, level = stack.pop()
        if not isinstance(tasks, list) or level > MAX_TASK_DEPTH:
            continue
        for i, task in enumerate(tasks):
            _empty_join(tasks, i, where, out)
            if isinstance(task, dict):
                _task(task, child(where, i), out, level)
                stack.extend(
                    (sub, sub_path, level + 1)
                    for sub_path, sub in iter_child_lists(task, child(where, i))
                )


def _task(task: dict[str, Any], path: str, out: list[Fault], depth: int) -> None:
    _unknown_keys(task, path, TASK_KEYS, out)
    if isinstance(task.get("taskDefinition"), dict):
        _unknown_keys(task["taskDefinition"], child(path, "taskDefinition"), TASKDEF_KEYS, out)
    param = task.get("subWorkflowParam")
    if isinstance(param, dict):
        _unknown_keys(param, child(path, "subWorkflowParam"), SUB_WORKFLOW_KEYS, out)
        inline = param.get("workflowDefinition")
        if isinstance(inline, dict):
            inline_path = child(child(path, "subWorkflowParam"), "workflowDefinition")
            _workflow(inline, inline_path, out, depth + 1)
    wanted = _REQUEST_INPUTS.get(str(task.get("type")))
    if wanted is not None:
        params = task.get("inputParameters")
        template = (task.get("taskDefinition") or {}).get("inputTemplate") or {}
        if not (isinstance(params, dict) and wanted in params) and wanted not in template:
            out.append(
                Fault(
                    child(path, "inputParameters"),
                    f"{task['type']} task without {wanted}: it must come from its TaskDef's inputTemplate",
                )
            )


def _empty_join(tasks: list[Any], i: int, path: str, out: list[Fault]) -> None:
    """A JOIN with empty joinOn after a static FORK_JOIN waits for nothing.

    Conductor accepts it (the JOIN completes at once and the branches run on,
    a fire-and-forget fork that its own e2e suite uses), so this is a warning,
    not a fault; usually joinOn was simply forgotten.
    """
    task = tasks[i]
    if not (isinstance(task, dict) and task.get("type") == "FORK_JOIN" and i + 1 < len(tasks)):
        return
    join = tasks[i + 1]
    if isinstance(join, dict) and join.get("type") == "JOIN" and not join.get("joinOn"):
        out.append(
            Fault(
                child(child(path, i + 1), "joinOn"),
                "empty: this JOIN waits for none of the FORK_JOIN's branches",
            )
        )
